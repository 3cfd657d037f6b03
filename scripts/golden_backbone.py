#!/usr/bin/python3
"""Golden feature maps and gradients of torchvision 0.14 ResNet bodies and
R50-FPN (as in fasterrcnn_resnet50_fpn: FrozenBatchNorm2d, trainable_layers=3)
with deterministic weights (golden_common.param), for backbone/ and fpn/ tests.

  /usr/bin/python3 scripts/golden_backbone.py            # small, committed
  /usr/bin/python3 scripts/golden_backbone.py --full DIR # full-size check (scripts/parity_full.sh)
"""
import argparse
import os
import sys

import torch
import torchvision
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common as gc  # noqa: E402

torch.set_num_threads(2)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def image(tag, shape):
    import numpy as np
    n = int(np.prod(shape))
    return torch.from_numpy(gc.symmetric("input_" + tag, n, 1.0).reshape(shape))


def body(depth):
    ctor = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34,
            50: torchvision.models.resnet50, 101: torchvision.models.resnet101}[depth]
    m = ctor(norm_layer=FrozenBatchNorm2d)
    gc.fill_model(m)
    return IntermediateLayerGetter(m, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}).eval()


def bodies(sizes, depths, out):
    w = gc.Writer()
    meta = {"sizes": sizes, "depths": depths}
    for d in depths:
        m = body(d)
        for s in sizes:
            tag = "x".join(map(str, s))
            with torch.no_grad():
                feats = m(image(tag, s))
            for k, v in feats.items():
                w.add(f"r{d}/{tag}/C{int(k) + 2}", v.numpy())
    w.save(out, meta)


def r50fpn(sizes, out, grads=True):
    m = _resnet_fpn_extractor(torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d), 3)
    gc.fill_model(m, prefix="backbone.")
    w = gc.Writer()
    import numpy as np
    for s in sizes:
        tag = "x".join(map(str, s))
        m.zero_grad()
        feats = m(image(tag, s))
        loss = 0
        for lvl, (k, v) in enumerate(feats.items()):
            w.add(f"{tag}/P{lvl + 2}", v.detach().numpy())
            r = torch.from_numpy(gc.symmetric(f"grad_R_{tag}_{lvl}", v.numel(), 1.0).reshape(v.shape))
            loss = loss + (v * r).sum()
        if grads:
            loss.backward()
            w.add(f"{tag}/loss", np.array([loss.item()]))
            for name, p in m.named_parameters():
                if p.grad is not None and (name.startswith("fpn.") or name.startswith("body.layer2.0")
                                           or name.startswith("body.layer4.2") or name.startswith("body.layer3.5.conv3")):
                    w.add(f"{tag}/grad/backbone.{name}", p.grad.numpy())
    w.save(out, {"sizes": sizes})


def bn_train(shape, out):
    """ResNet-18 with nn.BatchNorm2d in training mode (the backbone's norm
    "BN"): C2..C5, gradients of sum(C5 * R) for a few parameters, and the
    running statistics after the forward pass. Computed in float64 from the
    float32 weights and input: batch-norm backward cancels terms, so the
    stem's gradients of torch's own float32 run are 1e-3 (relative) away
    from the float64 result after 16 BN layers; float64 is the reference."""
    m = torchvision.models.resnet18()
    gc.fill_model(m)
    m = IntermediateLayerGetter(m, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}).train().double()
    w = gc.Writer()
    tag = "x".join(map(str, shape))
    feats = m(image(tag, shape).double())
    for k, v in feats.items():
        w.add(f"{tag}/C{int(k) + 2}", v.detach().numpy())
    c5 = feats["3"]
    r = torch.from_numpy(gc.symmetric(f"grad_R_{tag}", c5.numel(), 1.0).reshape(c5.shape)).double()
    (c5 * r).sum().backward()
    params = dict(m.named_parameters())
    for name in ("conv1.weight", "bn1.weight", "layer1.0.bn1.weight", "layer2.0.downsample.1.bias",
                 "layer3.1.conv1.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias"):
        w.add(f"{tag}/grad/{name}", params[name].grad.numpy())
    bufs = dict(m.named_buffers())
    for name in ("bn1", "layer2.0.downsample.1", "layer4.1.bn2"):
        for stat in ("running_mean", "running_var"):
            w.add(f"{tag}/{name}.{stat}", bufs[f"{name}.{stat}"].numpy())
    w.save(out, {"shape": shape, "torch": torch.__version__})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", metavar="DIR", help="write full-size goldens into DIR instead")
    a = ap.parse_args()
    if a.full:
        os.makedirs(a.full, exist_ok=True)
        bodies([[1, 3, 800, 1088], [1, 3, 608, 800]], [50, 101], os.path.join(a.full, "bodies"))
        r50fpn([[2, 3, 512, 512], [1, 3, 800, 1216]], os.path.join(a.full, "r50fpn"))
        return
    bodies([[1, 3, 64, 96], [2, 3, 96, 64]], [18, 50, 101], os.path.join(ROOT, "backbone/testdata/bodies"))
    bn_train([2, 3, 64, 96], os.path.join(ROOT, "backbone/testdata/bodies_bn"))
    r50fpn([[1, 3, 64, 96], [2, 3, 96, 128]], os.path.join(ROOT, "fpn/testdata/r50fpn"))


if __name__ == "__main__":
    main()
