#!/usr/bin/python3
"""Golden RoIAlign results of torchvision 0.14 (torchvision.ops.roi_align and
torchvision.ops.MultiScaleRoIAlign), forward and backward, for the tests of
kernels/roialign.go and layers/op_roialign.go.

  /usr/bin/python3 scripts/golden_roialign.py          # writes layers/testdata/roialign_*.{json,bin}
  /usr/bin/python3 scripts/golden_roialign.py --bench  # times MultiScaleRoIAlign fwd+bwd (see docs/PERFORMANCE.md)

Feature maps and the output weights R (the backward is the gradient of
sum(out * R)) are detrand tensors named in the Go tests; the regions are
stored in the golden files.
"""
import argparse
import math
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import LevelMapper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common as gc  # noqa: E402

torch.set_num_threads(2)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "layers", "testdata")


def det(name, shape, scale=1.0):
    n = int(np.prod(shape))
    return torch.from_numpy(gc.symmetric(name, n, scale).reshape(shape))


# ---------------------------------------------------------------- roi_align

# Feature map of the single-level cases: 2 images, 3 channels, 10 x 13.
KFEAT = [2, 3, 10, 13]


def kernel_rois():
    """Regions in image coordinates (the cases use spatial scale 0.5, so the
    image is 20 x 26): ordinary, crossing the border, tiny (< 1 px on the
    map), huge (larger than the image), inverted, in both images."""
    rows = [
        [0, 2.0, 3.0, 14.0, 11.0],
        [1, 2.0, 3.0, 14.0, 11.0],
        [0, 0.0, 0.0, 26.0, 20.0],          # whole image
        [1, -5.0, -3.0, 8.0, 6.5],          # crosses the top-left border
        [0, 18.3, 12.1, 31.7, 27.9],        # crosses the bottom-right border
        [1, 24.9, 1.0, 40.0, 5.0],          # mostly right of the image
        [0, 7.3, 5.2, 7.9, 5.6],            # tiny: 0.3 x 0.2 px on the map
        [1, 10.0, 10.0, 10.0, 10.0],        # empty box
        [0, 11.2, 3.3, 12.1, 17.9],         # thin
        [1, -40.0, -30.0, 70.0, 55.0],      # huge, larger than the image
        [0, -2.5, -2.5, -0.5, -0.5],        # just outside, top-left
        [1, 25.5, 19.5, 27.0, 21.0],        # on the last pixel
        [0, 6.0, 8.0, 3.0, 4.0],            # inverted (x2 < x1)
        [1, 0.25, 0.75, 25.75, 19.25],
    ]
    u = gc.uniform("roialign/rois", 4 * 10)
    for i in range(10):
        x1 = -4 + 30 * u[4 * i]
        y1 = -4 + 24 * u[4 * i + 1]
        w = 0.5 + 20 * u[4 * i + 2]
        h = 0.5 + 16 * u[4 * i + 3]
        rows.append([i % 2, x1, y1, x1 + w, y1 + h])
    return torch.tensor(rows, dtype=torch.float32)


KCASES = [
    # name, pooled (h, w), scale, sampling, aligned
    ("p7_s2_na", (7, 7), 0.5, 2, False),
    ("p7_s0_na", (7, 7), 0.5, 0, False),
    ("p7_s2_al", (7, 7), 0.5, 2, True),
    ("p7_s0_al", (7, 7), 0.5, 0, True),
    ("p3x5_s1_al", (3, 5), 0.5, 1, True),
    ("p2_s3_na_scale1", (2, 2), 1.0, 3, False),
]


def kernel_golden(w):
    rois = kernel_rois()
    w.add("kernel/rois", rois.numpy())
    meta = []
    for name, (ph, pw), scale, sr, al in KCASES:
        feat = det("roialign/feat", KFEAT).requires_grad_(True)
        out = roi_align(feat, rois, (ph, pw), spatial_scale=scale, sampling_ratio=sr, aligned=al)
        r = det("roialign/R/" + name, list(out.shape))
        (out * r).sum().backward()
        w.add(f"kernel/{name}/out", out.detach().numpy(), max_count=1 << 16)
        w.add(f"kernel/{name}/dfeat", feat.grad.numpy(), max_count=1 << 16)
        meta.append({"name": name, "ph": ph, "pw": pw, "scale": scale, "sampling": sr, "aligned": al})
    return meta


# ------------------------------------------------------- MultiScaleRoIAlign

IMG_H, IMG_W = 96, 128
MC = 4
MFEATS = [[2, MC, 24, 32], [2, MC, 12, 16], [2, MC, 6, 8], [2, MC, 3, 4]]


def multiscale_boxes():
    """Boxes per image, sized so that every level gets some (sqrt(area) of
    <112 -> P2, 112..224 -> P3, 224..448 -> P4, >=448 -> P5)."""
    b0 = [
        [10.0, 12.0, 40.0, 50.0],       # small -> P2
        [0.3, 0.7, 0.9, 1.1],           # tiny
        [20.0, 10.0, 132.0, 90.0],      # 112 x 80 -> P2 (sqrt 94.7)
        [0.0, 0.0, 112.0, 112.0],       # exactly 112: -> P3
        [-30.0, -20.0, 150.0, 130.0],   # 180 x 150 -> P3
        [-60.0, -60.0, 180.0, 170.0],   # 240 x 230 -> P4
        [-200.0, -150.0, 300.0, 250.0], # 500 x 400 -> P4
        [-300.0, -300.0, 400.0, 350.0], # 700 x 650 -> P5
        [50.0, 40.0, 50.0, 60.0],       # zero area -> P2
        [100.0, 80.0, 140.0, 110.0],    # crosses the bottom-right border
    ]
    b1 = [
        [5.0, 5.0, 120.0, 90.0],
        [-10.0, -10.0, 250.0, 240.0],   # -> P4
        [60.0, 30.0, 62.5, 31.5],
        [0.0, 0.0, 224.0, 224.0],       # exactly 224 -> P4
        [-400.0, -400.0, 600.0, 500.0], # -> P5
    ]
    u = gc.uniform("roialign/msboxes", 4 * 12)
    for i in range(12):
        s = 8 * 2 ** (6 * u[4 * i + 2])  # 8 .. 512 px
        ar = 0.5 + u[4 * i + 3]
        cx = -10 + 148 * u[4 * i]
        cy = -10 + 116 * u[4 * i + 1]
        bw, bh = s * math.sqrt(ar), s / math.sqrt(ar)
        (b0 if i % 2 == 0 else b1).append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    return [torch.tensor(b0, dtype=torch.float32), torch.tensor(b1, dtype=torch.float32)]


MCASES = [
    # name, output size, sampling, aligned, eps
    ("s7_r2_na", 7, 2, False, 1e-6),
    ("s7_r0_na", 7, 0, False, 1e-6),
    ("s5_r2_al", 5, 2, True, 1e-6),
    ("s7_r0_al_eps8", 7, 0, True, 1e-8),
]


def multiscale(feats, boxes, size, sr, aligned, eps):
    """torchvision's MultiScaleRoIAlign; for aligned=True or another eps
    (which the module cannot take) the same scales, LevelMapper and per-level
    roi_align with those arguments."""
    m = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], size, sr)
    x = OrderedDict((f"p{i + 2}", f) for i, f in enumerate(feats))
    if not aligned and eps == 1e-6:
        out = m(x, boxes, [(IMG_H, IMG_W)])
        levels = m.map_levels(boxes)
        return out, levels, m.scales
    m(x, [b[:1] for b in boxes], [(IMG_H, IMG_W)])  # sets scales and mapper
    mapper = LevelMapper(m.map_levels.k_min, m.map_levels.k_max, 224, 4, eps)
    levels = mapper(boxes)
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)])
    out = torch.zeros(len(rois), MC, size, size)
    for lvl, (f, s) in enumerate(zip(feats, m.scales)):
        idx = torch.where(levels == lvl)[0]
        out[idx] = roi_align(f, rois[idx], (size, size), spatial_scale=s, sampling_ratio=sr, aligned=aligned)
    return out, levels, m.scales


def multiscale_golden(w):
    boxes = multiscale_boxes()
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)])
    w.add("ms/rois", rois.numpy())
    meta = []
    for name, size, sr, al, eps in MCASES:
        feats = [det(f"roialign/ms/p{i + 2}", s).requires_grad_(True) for i, s in enumerate(MFEATS)]
        out, levels, scales = multiscale(feats, boxes, size, sr, al, eps)
        r = det("roialign/ms/R/" + name, list(out.shape))
        (out * r).sum().backward()
        w.add(f"ms/{name}/out", out.detach().numpy(), max_count=1 << 16)
        w.add(f"ms/{name}/levels", levels.numpy().astype(np.float32))
        for i, f in enumerate(feats):
            w.add(f"ms/{name}/dp{i + 2}", f.grad.numpy(), max_count=1 << 16)
        meta.append({"name": name, "size": size, "sampling": sr, "aligned": al, "eps": eps, "scales": scales})
    return meta


# ----------------------------------------------------------------- benchmark


def bench_rois(k, img):
    """The benchmark's regions (mirrored by benchRoIs in
    layers/op_roialign_test.go): two images, sides 16..416 px."""
    u = gc.uniform("roialign/bench", 4 * k)
    rows = []
    for i in range(k):
        bw = 16 + 400 * u[4 * i + 2]
        bh = 16 + 400 * u[4 * i + 3]
        x1 = u[4 * i] * (img - bw)
        y1 = u[4 * i + 1] * (img - bh)
        rows.append([float(i % 2), x1, y1, x1 + bw, y1 + bh])
    return torch.tensor(rows, dtype=torch.float32)


def bench():
    img, c, k = 512, 256, 1024
    rois = bench_rois(k, img)
    boxes = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    feats = OrderedDict((f"p{l}", torch.randn(2, c, img >> l, img >> l).requires_grad_(True)) for l in range(2, 6))
    m = MultiScaleRoIAlign(list(feats), 7, 2)
    r = torch.randn(k, c, 7, 7)
    times = []
    for it in range(6):
        for f in feats.values():
            f.grad = None
        t0 = time.perf_counter()
        out = m(feats, boxes, [(img, img)])
        out.backward(r)
        times.append(time.perf_counter() - t0)
    times = times[1:]
    print(f"torchvision {torchvision.__version__} MultiScaleRoIAlign fwd+bwd, {k} RoIs, {c} ch, P2-P5 of "
          f"{img}x{img}, sampling 2, threads {torch.get_num_threads()}: median {1e3 * float(np.median(times)):.1f} ms, "
          f"min {1e3 * min(times):.1f} ms over {len(times)} runs")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", action="store_true")
    args = ap.parse_args()
    if args.bench:
        bench()
        return
    w = gc.Writer()
    meta = {"kernel_feat": KFEAT, "kernel_cases": kernel_golden(w),
            "image": [IMG_H, IMG_W], "ms_feats": MFEATS, "ms_cases": multiscale_golden(w),
            "torchvision": torchvision.__version__}
    w.save(os.path.join(OUT, "roialign"), meta)
    print("wrote", os.path.join(OUT, "roialign") + ".{json,bin}")


if __name__ == "__main__":
    main()
