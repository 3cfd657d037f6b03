#!/usr/bin/python3
"""Compare kddetect's results JSON with torchvision 0.14's own detections.

  /usr/bin/python3 scripts/infer_full_check.py --weights W.pth --images DIR --results R.json

Runs torchvision's fasterrcnn_resnet50_fpn (its GeneralizedRCNNTransform,
min 800 / max 1333, one image per call) with the state dict W.pth on every
image named in R.json (file_name, looked up in DIR), and prints per image
the detection counts, the fraction of equal labels, and the largest box and
score differences (detections compared in order, best first). Exits 1 when
counts or labels differ or a box differs by more than --box-tol pixels.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.transforms.functional import to_tensor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--box-tol", type=float, default=1e-2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    m = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    m.load_state_dict(torch.load(a.weights, map_location="cpu"))
    m.eval()
    res = json.load(open(a.results))
    by_file = {}
    for r in res:
        by_file.setdefault(r["file_name"], []).append(r)
    ok = True
    for f in sorted(by_file):
        ours = by_file[f]
        with torch.no_grad():
            d = m([to_tensor(Image.open(os.path.join(a.images, f)).convert("RGB"))])[0]
        ob = np.array([[x["bbox"][0], x["bbox"][1], x["bbox"][0] + x["bbox"][2], x["bbox"][1] + x["bbox"][3]] for x in ours])
        osc = np.array([x["score"] for x in ours])
        ol = np.array([x["category_id"] for x in ours])
        tb, ts, tl = d["boxes"].numpy(), d["scores"].numpy(), d["labels"].numpy()
        n = min(len(ob), len(tb))
        same = float((ol[:n] == tl[:n]).mean()) if n else 1.0
        db = float(np.abs(ob[:n] - tb[:n]).max()) if n else 0.0
        ds = float(np.abs(osc[:n] - ts[:n]).max()) if n else 0.0
        print(f"{f}: kddetect {len(ob)}, torchvision {len(tb)} detections; labels equal {same:.3f}; "
              f"max |box diff| {db:.2e} px; max |score diff| {ds:.2e}")
        ok = ok and len(ob) == len(tb) and same == 1.0 and db <= a.box_tol
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
