#!/usr/bin/python3
"""Write torchvision 0.14 golden files for the Go package boxes.

Run with Debian's interpreter (torch 1.13 / torchvision 0.14):

    /usr/bin/python3 scripts/boxes_golden.py

Writes boxes/testdata/golden.json (small cases, float32 values written as the
exact decimal of the float32) and boxes/testdata/nms10k.bin (10k boxes for the
exact-NMS test and BenchmarkNMS10k). Seeds are fixed; rerunning gives the same
files.
"""
import hashlib
import json
import os
import struct

import numpy as np
import torch
import torchvision
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import boxes as box_ops

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "boxes", "testdata")


def f32(t):
    return [float(v) for v in t.detach().to(torch.float32).reshape(-1).tolist()]


def ints(t):
    return [int(v) for v in t.reshape(-1).tolist()]


def rand_boxes(g, n, extent=600.0, min_wh=1.0, max_wh=200.0):
    xy = torch.rand(n, 2, generator=g) * extent
    wh = min_wh + torch.rand(n, 2, generator=g) * (max_wh - min_wh)
    # quantised to 1/16 pixel: exact in float32 and short in JSON
    return (torch.round(torch.cat([xy, xy + wh], dim=1) * 16) / 16).to(torch.float32)


def unique_scores(g, n):
    # a random permutation of distinct float32 values: no ties
    s = (torch.randperm(n, generator=g).to(torch.float64) + 0.5) / 2 ** 14
    s = s.to(torch.float32)
    assert len(set(s.tolist())) == n
    return s


def main():
    g = torch.Generator().manual_seed(20221014)
    gold = {"torchvision": torchvision.__version__, "torch": torch.__version__}

    # --- IoU / area -------------------------------------------------------
    a = rand_boxes(g, 23)
    b = torch.cat([rand_boxes(g, 30), a[:3], a[3:4] + 0.5,
                   torch.tensor([[0, 0, 0, 0], [10, 10, 10, 30], [5, 5, 600, 600]], dtype=torch.float32)])
    gold["iou"] = {"a": f32(a), "b": f32(b), "iou": f32(box_ops.box_iou(a, b)),
                   "area_b": f32(box_ops.box_area(b))}

    # --- box coder ----------------------------------------------------------
    coder_cases = []
    for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        coder = BoxCoder(weights)
        props = rand_boxes(g, 40, min_wh=4.0)
        ref = rand_boxes(g, 40, min_wh=4.0)
        enc = coder.encode_single(ref, props)
        # deltas: ordinary ones, plus huge dw/dh that hit the clamp
        d1 = torch.randn(40, 4, generator=g) * 0.5
        d1[:8, 2:] = torch.tensor([[20.0, 30.0], [8.0, -3.0], [-9.0, 50.0], [100.0, 100.0],
                                   [4.2, 4.2], [1e4, 0.0], [0.0, -40.0], [float(np.log(1000 / 16)) * weights[2] + 0.01, 0.0]])
        dec1 = coder.decode_single(d1, props)
        # class-specific deltas: 3 classes -> 12 values per box
        d3 = torch.randn(40, 12, generator=g) * 2.0
        d3[0, 2] = 80.0
        dec3 = coder.decode_single(d3, props)
        coder_cases.append({"weights": list(weights), "proposals": f32(props), "reference": f32(ref),
                            "encoded": f32(enc), "deltas1": f32(d1), "decoded1": f32(dec1),
                            "deltas3": f32(d3), "decoded3": f32(dec3)})
    gold["coder"] = coder_cases

    # --- clip / remove small ---------------------------------------------------
    cb = (torch.rand(50, 4, generator=g) * 900 - 150).to(torch.float32)
    cb[:, 2:] = cb[:, :2] + torch.rand(50, 2, generator=g) * 300
    clip_cases = []
    for (h, w) in [(480, 640), (800, 1216), (33, 17)]:
        clip_cases.append({"h": h, "w": w, "boxes": f32(cb), "clipped": f32(box_ops.clip_boxes_to_image(cb, (h, w)))})
    gold["clip"] = clip_cases
    sb = rand_boxes(g, 60, min_wh=0.0, max_wh=6.0)
    sb[0] = torch.tensor([1, 1, 2, 2])  # exactly min size 1
    sb[1] = torch.tensor([5, 5, 4, 9])  # inverted
    gold["remove_small"] = [{"boxes": f32(sb), "min_size": ms, "keep": ints(box_ops.remove_small_boxes(sb, ms))}
                            for ms in [1e-3, 1.0, 2.5, 5.0]]

    # --- NMS ------------------------------------------------------------------
    nms_cases = []
    for n, extent, max_wh in [(200, 300.0, 120.0), (500, 600.0, 200.0), (1500, 800.0, 150.0)]:
        bx = rand_boxes(g, n, extent=extent, min_wh=2.0, max_wh=max_wh)
        # near-duplicates to exercise high thresholds
        bx[n // 2:n // 2 + 40] = bx[:40] + torch.rand(40, 4, generator=g) * 3
        sc = unique_scores(g, n)
        groups = torch.randint(0, 5, (n,), generator=g)
        case = {"boxes": f32(bx), "scores": f32(sc), "groups": ints(groups), "runs": []}
        for thr in [0.0, 0.3, 0.5, 0.7, 0.9]:
            case["runs"].append({
                "thr": thr,
                "nms": ints(box_ops.nms(bx, sc, thr)),
                "batched_vanilla": ints(box_ops._batched_nms_vanilla(bx, sc, groups, thr)),
                "batched_trick": ints(box_ops._batched_nms_coordinate_trick(bx, sc, groups, thr)),
                "batched": ints(box_ops.batched_nms(bx, sc, groups, thr)),
            })
        nms_cases.append(case)
    gold["nms"] = nms_cases

    # --- anchors --------------------------------------------------------------
    anchor_cases = []
    configs = [
        ("default", ((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5),
        ("multi", ((32, 40, 50), (64, 80, 101), (128, 161, 203), (256, 322, 406), (512, 645, 812)),
         ((0.5, 1.0, 2.0),) * 5),
        ("odd_ratios", ((16,), (33,), (70,), (150,), (300,)), ((0.25, 0.7, 1.0, 1.3, 3.0),) * 5),
    ]
    for name, sizes, ratios in configs:
        gen = AnchorGenerator(sizes, ratios)
        for (ih, iw) in [(320, 480), (800, 1216), (608, 800)]:
            feats = []
            fh, fw = ih, iw
            for lvl in range(4):
                fh, fw = (fh + (3 if lvl == 0 else 1)) // (4 if lvl == 0 else 2), (fw + (3 if lvl == 0 else 1)) // (4 if lvl == 0 else 2)
                feats.append((fh, fw))
            feats.append(((feats[-1][0] + 1) // 2, (feats[-1][1] + 1) // 2))  # P6: maxpool k1 s2
            il = ImageList(torch.zeros(1, 3, ih, iw), [(ih, iw)])
            fmaps = [torch.zeros(1, 1, h, w) for (h, w) in feats]
            anchors = gen(il, fmaps)[0].to(torch.float32).contiguous()
            raw = anchors.numpy().astype("<f4").tobytes()
            n = anchors.shape[0]
            rows = sorted(set([0, 1, 2, n // 3, n // 2, n - 2, n - 1]))
            anchor_cases.append({
                "name": name, "sizes": [list(map(float, s)) for s in sizes],
                "ratios": [list(map(float, r)) for r in ratios], "image": [ih, iw], "features": [list(f) for f in feats],
                "cell": [f32(c) for c in gen.cell_anchors], "count": n, "sha256": hashlib.sha256(raw).hexdigest(),
                "rows": rows, "row_values": [f32(anchors[r]) for r in rows],
            })
    gold["anchors"] = anchor_cases

    # --- matcher --------------------------------------------------------------
    matcher_cases = []
    for ngt, npred, extra in [(5, 300, "plain"), (12, 400, "dup"), (4, 200, "lonely_gt"), (1, 50, "plain")]:
        gt = rand_boxes(g, ngt, min_wh=20.0, max_wh=150.0)
        pred = rand_boxes(g, npred, min_wh=10.0, max_wh=200.0)
        if extra == "dup":
            pred[10:20] = pred[0:10]          # exact duplicates: ties in the GT maxima
            pred[20:25] = gt[:5]              # perfect matches
        if extra == "lonely_gt":
            gt[0] = torch.tensor([2000.0, 2000.0, 2050.0, 2050.0])  # overlaps nothing: max IoU 0
        q = box_ops.box_iou(gt, pred)
        runs = []
        for hi, lo, alq in [(0.7, 0.3, True), (0.7, 0.3, False), (0.5, 0.5, False), (0.5, 0.5, True), (0.6, 0.2, True)]:
            m = Matcher(hi, lo, allow_low_quality_matches=alq)
            runs.append({"high": hi, "low": lo, "allow_low_quality": alq, "matches": ints(m(q.clone()))})
        matcher_cases.append({"name": extra, "gt": f32(gt), "pred": f32(pred), "quality": f32(q), "num_gt": ngt,
                              "num_pred": npred, "runs": runs})
    gold["matcher"] = matcher_cases

    # --- sampler: explicit permutations reproduce torchvision ------------------
    from torchvision.models.detection._utils import BalancedPositiveNegativeSampler
    labels = torch.randint(-1, 3, (700,), generator=g)
    labels[labels == 2] = 0  # more negatives than positives
    sampler_cases = []
    for bs, frac in [(256, 0.5), (512, 0.25), (64, 0.9)]:
        torch.manual_seed(bs)
        positive = torch.where(labels >= 1)[0]
        negative = torch.where(labels == 0)[0]
        perm1 = torch.randperm(positive.numel())
        perm2 = torch.randperm(negative.numel())
        torch.manual_seed(bs)
        pos_mask, neg_mask = BalancedPositiveNegativeSampler(bs, frac)([labels])
        sampler_cases.append({"batch": bs, "fraction": frac, "pos_perm": ints(perm1), "neg_perm": ints(perm2),
                              "pos": ints(torch.where(pos_mask[0])[0]), "neg": ints(torch.where(neg_mask[0])[0])})
    gold["sampler"] = {"labels": ints(labels), "cases": sampler_cases}

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(gold, f, separators=(",", ":"))

    # --- 10k NMS: binary file -------------------------------------------------
    # layout (little endian): int32 n, int32 num_thr, float64 thr[num_thr],
    # float32 boxes[4n], float32 scores[n], per thr: int32 k, int32 keep[k]
    n = 10000
    bx = rand_boxes(g, n, extent=1200.0, min_wh=8.0, max_wh=300.0)
    sc = unique_scores(g, n)
    thrs = [0.5, 0.7]
    with open(os.path.join(OUT, "nms10k.bin"), "wb") as f:
        f.write(struct.pack("<ii", n, len(thrs)))
        f.write(struct.pack("<%dd" % len(thrs), *thrs))
        f.write(bx.numpy().astype("<f4").tobytes())
        f.write(sc.numpy().astype("<f4").tobytes())
        for thr in thrs:
            keep = box_ops.nms(bx, sc, thr).numpy().astype("<i4")
            f.write(struct.pack("<i", len(keep)))
            f.write(keep.tobytes())


if __name__ == "__main__":
    main()
