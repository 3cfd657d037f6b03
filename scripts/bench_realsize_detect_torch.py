#!/usr/bin/python3
"""torchvision side of scripts/bench_realsize_detect.sh: writes the
deterministic torchvision fasterrcnn_resnet50_fpn weights
(golden_common.fill_model) to --save, then runs inference (its own
transform at 800/1333, eval mode, no_grad, batch 1) on every image of
--images, printing time and RSS per image and a summary."""
import argparse
import os
import resource
import sys
import time

import torch
import torchvision
from torchvision.io import read_image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common as gc  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--images", required=True)
ap.add_argument("--save", required=True)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--limit", type=int, default=0, help="only the first N images (sorted names); 0: all")
a = ap.parse_args()
torch.set_num_threads(a.threads)
model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
gc.fill_model(model)
model.eval()
torch.save(model.state_dict(), a.save)


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


files = sorted(f for f in os.listdir(a.images) if f.endswith(".jpg"))
if a.limit > 0:
    files = files[:a.limit]
times, rss, dets = [], [], 0
for f in files:
    x = read_image(os.path.join(a.images, f)).float() / 255
    t = time.perf_counter()
    with torch.no_grad():
        d = model([x])[0]
    times.append(time.perf_counter() - t)
    rss.append(rss_mb())
    dets += len(d["scores"])
n = len(times)
third = max(1, n // 3)
print(f"torch summary: {n} images, {dets} detections, mean {sum(times[1:])/max(1, n-1):.3f} s/image after the first, "
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MB, "
      f"RSS first-third max {max(rss[:third]):.0f} MB, last-third max {max(rss[-third:]):.0f} MB")
