#!/usr/bin/python3
"""Golden proposals, detections, training losses and head gradients of a
reduced torchvision 0.14 FasterRCNN (ResNet-18 body with FrozenBatchNorm2d,
FPN 32 channels, TwoMLPHead(32*7*7, 64), FastRCNNPredictor(64, 5), default
RPN/RoI settings) with deterministic weights (golden_common.param), for
model/parity_test.go.

GeneralizedRCNNTransform is bypassed: an already-normalised deterministic
batch (2 x 3 x 128 x 160, image sizes (128, 160) and (117, 150), zero
padding) goes through model.backbone, model.rpn and model.roi_heads.

Training: torchvision's fg_bg_samplers are wrapped to record the indices
they return (torch.where(mask)[0] per image, positives and negatives), so
that the Go side can replay them through FasterRCNN.RPNSample/RoISample.

  /usr/bin/python3 scripts/golden_detector.py   # writes model/testdata/detector.{json,bin}
  /usr/bin/python3 scripts/golden_detector.py --full DIR

--full (scripts/parity_detector_full.sh): a real
fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None) with the same
deterministic weights and a confident predictor, saved as DIR/frcnn.pth;
three smooth random PNG images of different sizes; torchvision's own
detections on them (its GeneralizedRCNNTransform, min 800 / max 1333, one
image per call) in DIR/expected.json.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common as gc  # noqa: E402

torch.set_num_threads(2)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

N, H, W = 2, 128, 160
SIZES = [(128, 160), (117, 150)]
NUM_CLASSES = 5
# Confident predictor: cls_score.weight * CLS_GAIN plus distinct biases
# (scores spread over (0.05, 1), no top-100 cut). Both bbox_pred weights are
# scaled by DELTA_GAIN so that box deltas stay in a trained detector's range
# (|d| < ~4 instead of ~15): with He-uniform weights, exp(dw) amplifies
# float32 noise in the deltas past 1e-4 in torch itself (float32 against
# float64 proposals: 2.4e-4 relative at gain 1, 6e-5 at 0.3).
CLS_GAIN = 1.5
CLS_BIAS = [1.4, -0.6, -7.2, 3.8, 9.8]
DELTA_GAIN = 0.3
GT = [
    [[10, 12, 70, 60], [60, 40, 150, 120], [20, 80, 60, 126]],
    [[5, 5, 50, 90], [70, 20, 140, 70]],
]
GT_LABELS = [[1, 3, 2], [4, 1]]


def confident(model):
    """Scales the class logits so that detections are not near-ties."""
    with torch.no_grad():
        p = model.roi_heads.box_predictor.cls_score
        p.weight.mul_(CLS_GAIN)
        p.bias.add_(torch.tensor(CLS_BIAS, dtype=torch.float32))
        model.rpn.head.bbox_pred.weight.mul_(DELTA_GAIN)
        model.roi_heads.box_predictor.bbox_pred.weight.mul_(DELTA_GAIN)


def reduced_model():
    body = torchvision.models.resnet18(norm_layer=FrozenBatchNorm2d)
    bb = BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
                         [64, 128, 256, 512], 32)
    model = FasterRCNN(bb, num_classes=None,
                       box_head=TwoMLPHead(32 * 7 * 7, 64),
                       box_predictor=FastRCNNPredictor(64, NUM_CLASSES))
    gc.fill_model(model)
    confident(model)
    return model


def batch():
    x = gc.symmetric("detector_images", N * 3 * H * W, 1.0).reshape(N, 3, H, W)
    for i, (h, w) in enumerate(SIZES):
        x[i, :, h:, :] = 0
        x[i, :, :, w:] = 0
    return torch.from_numpy(x)


class Recorder:
    """Wraps a BalancedPositiveNegativeSampler and keeps its choices."""

    def __init__(self, sampler):
        self.sampler, self.calls = sampler, []

    def __call__(self, labels):
        pos, neg = self.sampler(labels)
        self.calls.append([(torch.where(p)[0].numpy(), torch.where(q)[0].numpy()) for p, q in zip(pos, neg)])
        return pos, neg


def f64_noise(props, props64, tag):
    """torch's own float32 error on proposals: worst coordinate difference
    against float64, relative to max(|x|, 1)."""
    worst = 0.0
    for a, b in zip(props, props64):
        if a.shape != b.shape:
            print(f"{tag}: float64 proposals differ in count:", a.shape, b.shape)
            continue
        worst = max(worst, float(((a.double() - b).abs() / b.abs().clamp(min=1)).max()))
    print(f"{tag}: torch float32 proposals against float64: worst relative difference {worst:.2g}")
    return worst


def main():
    model = reduced_model()
    x = batch()
    images = ImageList(x, list(SIZES))
    w = gc.Writer(max_count=4096)
    meta = {"n": N, "h": H, "w": W, "sizes": SIZES, "num_classes": NUM_CLASSES,
            "cls_gain": CLS_GAIN, "cls_bias": CLS_BIAS, "delta_gain": DELTA_GAIN, "gt": GT, "gt_labels": GT_LABELS,
            "torch": torch.__version__, "torchvision": torchvision.__version__}

    # Inference.
    model.eval()
    with torch.no_grad():
        feats = model.backbone(x)
        props, _ = model.rpn(images, feats)
        dets, _ = model.roi_heads(feats, props, images.image_sizes)
    all_scores = []
    for i in range(N):
        w.add(f"eval/proposals/{i}", props[i].numpy(), max_count=1 << 20)
        d = dets[i]
        w.add(f"eval/boxes/{i}", d["boxes"].numpy(), max_count=1 << 20)
        w.add(f"eval/scores/{i}", d["scores"].numpy(), max_count=1 << 20)
        w.add(f"eval/labels/{i}", d["labels"].numpy().astype(np.float32), max_count=1 << 20)
        all_scores.append(d["scores"].numpy())
        print(f"image {i}: {len(props[i])} proposals, {len(d['scores'])} detections, labels "
              f"{np.bincount(d['labels'].numpy(), minlength=NUM_CLASSES).tolist()}")
    # torch's own float32 error: the same proposals in float64.
    m64 = reduced_model().double().eval()
    with torch.no_grad():
        x64 = x.double()
        props64, _ = m64.rpn(ImageList(x64, list(SIZES)), m64.backbone(x64))
    meta["proposals_f32_vs_f64"] = f64_noise(props, props64, "eval")
    s = np.sort(np.concatenate(all_scores))[::-1]
    gaps = np.diff(s)
    print(f"scores: max {s.max():.4f} median {np.median(s):.4f} min {s.min():.4f}; "
          f"{(s > 0.5).sum()} above 0.5; smallest gap between sorted scores {(-gaps).min():.2e}")

    # Training, sampler choices recorded.
    model.train()
    rpn_rec = Recorder(model.rpn.fg_bg_sampler)
    roi_rec = Recorder(model.roi_heads.fg_bg_sampler)
    model.rpn.fg_bg_sampler = rpn_rec
    model.roi_heads.fg_bg_sampler = roi_rec
    torch.manual_seed(0)
    targets = [{"boxes": torch.tensor(GT[i], dtype=torch.float32),
                "labels": torch.tensor(GT_LABELS[i], dtype=torch.int64)} for i in range(N)]
    model.zero_grad()
    feats = model.backbone(x)
    props, rpn_losses = model.rpn(images, feats, targets)
    _, roi_losses = model.roi_heads(feats, props, images.image_sizes, targets)
    losses = {**rpn_losses, **roi_losses}
    total = sum(losses.values())
    total.backward()
    for k, v in losses.items():
        w.add(f"train/loss/{k}", np.array([v.item()]))
        print(f"{k} = {v.item():.6f}")
    m64.train()
    with torch.no_grad():
        t64 = [{k: v.double() if k == "boxes" else v for k, v in t.items()} for t in targets]
        props64, _ = m64.rpn(ImageList(x64, list(SIZES)), m64.backbone(x64), t64)
    meta["train_proposals_f32_vs_f64"] = f64_noise([p.detach() for p in props], props64, "train")
    for i in range(N):
        w.add(f"train/proposals/{i}", props[i].detach().numpy(), max_count=1 << 20)
        for tag, rec in (("rpn", rpn_rec), ("roi", roi_rec)):
            pos, neg = rec.calls[0][i]
            w.add(f"train/{tag}_pos/{i}", pos.astype(np.float32), max_count=1 << 20)
            w.add(f"train/{tag}_neg/{i}", neg.astype(np.float32), max_count=1 << 20)
            print(f"train {tag} image {i}: {len(pos)} positives, {len(neg)} negatives")
    for name, p in model.named_parameters():
        if (name.startswith("rpn.head.") or name.startswith("roi_heads.")) and p.grad is not None:
            w.add(f"train/grad/{name}", p.grad.numpy())
    out = os.path.join(ROOT, "model/testdata/detector")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    w.save(out, meta)
    print("wrote", out + ".{json,bin}", os.path.getsize(out + ".bin"), "bytes")


FULL_IMAGES = [("a_480x640.png", 480, 640), ("b_427x640.png", 427, 640), ("c_512x512.png", 512, 512)]


def smooth_image(name, h, w):
    """Smooth random RGB content: a coarse detrand grid upsampled bicubically,
    plus a few flat rectangles so that there are edges."""
    from PIL import Image, ImageDraw
    gh, gw = max(2, h // 40), max(2, w // 40)
    grid = (gc.uniform(name, gh * gw * 3).reshape(gh, gw, 3) * 255).astype(np.uint8)
    img = Image.fromarray(grid, "RGB").resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    r = gc.uniform(name + "/rects", 4 * 7)
    for k in range(4):
        x0, y0 = int(r[7 * k] * w * 0.7), int(r[7 * k + 1] * h * 0.7)
        x1, y1 = x0 + int((0.1 + 0.3 * r[7 * k + 2]) * w), y0 + int((0.1 + 0.3 * r[7 * k + 3]) * h)
        col = tuple(int(255 * v) for v in r[7 * k + 4:7 * k + 7])
        draw.rectangle([x0, y0, x1, y1], fill=col)
    return img


def full(out):
    from torchvision.transforms.functional import to_tensor
    os.makedirs(out, exist_ok=True)
    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    gc.fill_model(model)
    model.eval()
    imgs = []
    for fname, h, w in FULL_IMAGES:
        im = smooth_image(fname, h, w)
        im.save(os.path.join(out, fname))
        imgs.append(to_tensor(im))
    # Confident predictor, calibrated on the first image: per-class mean
    # logits over its proposals are moved to distinct targets (background
    # high), weights scaled, box deltas in a trained detector's range.
    feats = {}
    def keep(_m, inputs, _out):
        feats["x"] = inputs[0]

    h = model.roi_heads.box_predictor.register_forward_hook(keep)
    with torch.no_grad():
        model([imgs[0]])
    h.remove()
    with torch.no_grad():
        cls = model.roi_heads.box_predictor.cls_score
        mean = cls(feats["x"]).mean(0)
        target = torch.from_numpy(gc.symmetric("full/cls_target", mean.numel(), 1.5))
        target[0] = FULL_BG
        cls.weight.mul_(FULL_GAIN)
        cls.bias.copy_(cls.bias * FULL_GAIN - FULL_GAIN * mean + target)
        model.rpn.head.bbox_pred.weight.mul_(DELTA_GAIN)
        model.roi_heads.box_predictor.bbox_pred.weight.mul_(DELTA_GAIN)
    torch.save(model.state_dict(), os.path.join(out, "frcnn.pth"))
    res = {"images": []}
    for (fname, h, w), x in zip(FULL_IMAGES, imgs):
        with torch.no_grad():
            d = model([x])[0]
        s = d["scores"].numpy()
        print(f"{fname}: {len(s)} detections, scores {s.min() if len(s) else 0:.3f}..{s.max() if len(s) else 0:.3f}, "
              f"{len(set(d['labels'].tolist()))} classes")
        res["images"].append({"file": fname, "height": h, "width": w,
                              "boxes": d["boxes"].tolist(), "scores": s.tolist(), "labels": d["labels"].tolist()})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(res, f)
    print("wrote", out)


FULL_GAIN = 1.5
FULL_BG = 7.0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", metavar="DIR", help="write the full-size check into DIR instead")
    a = ap.parse_args()
    if a.full:
        full(a.full)
    else:
        main()
