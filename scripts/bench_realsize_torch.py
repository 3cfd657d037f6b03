#!/usr/bin/python3
"""torchvision side of scripts/bench_realsize.sh: fasterrcnn_resnet50_fpn
trained from random weights as the Go side is (FrozenBatchNorm2d, 3
trainable backbone stages, 91 classes, its own GeneralizedRCNNTransform at
800/1333 padded to 32), SGD momentum 0.9, wd 1e-4, batches of 2 real-size
images of one aspect group (landscape with landscape, portrait with
portrait, as detectron2's and torchvision's grouped samplers do). Prints one
line per iteration (time, padded shape, RSS) and a summary."""
import argparse
import json
import os
import random
import resource
import time

import torch
import torchvision
from torchvision.io import read_image
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

ap = argparse.ArgumentParser()
ap.add_argument("--ann", required=True)
ap.add_argument("--images", required=True)
ap.add_argument("--iters", type=int, default=20)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
random.seed(a.seed)

js = json.load(open(a.ann))
anns = {}
for an in js["annotations"]:
    if not an.get("iscrowd", 0):
        anns.setdefault(an["image_id"], []).append(an)
imgs = [im for im in js["images"] if im["id"] in anns]
groups = {True: [], False: []}
model = FasterRCNN(_resnet_fpn_extractor(torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d), 3), 91)
model.train()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.SGD(params, lr=0.0025, momentum=0.9, weight_decay=1e-4)


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def batches():
    while True:
        order = imgs[:]
        random.shuffle(order)
        for im in order:
            g = groups[im["width"] >= im["height"]]
            g.append(im)
            if len(g) == 2:
                yield list(g)
                g.clear()


times, rss = [], []
it = batches()
for i in range(a.iters):
    b = next(it)
    images, targets = [], []
    for im in b:
        x = read_image(os.path.join(a.images, im["file_name"])).float() / 255
        images.append(x)
        bx = torch.tensor([[an["bbox"][0], an["bbox"][1], an["bbox"][0] + an["bbox"][2], an["bbox"][1] + an["bbox"][3]]
                           for an in anns[im["id"]]], dtype=torch.float32)
        targets.append({"boxes": bx, "labels": torch.tensor([an["category_id"] for an in anns[im["id"]]])})
    t = time.perf_counter()
    losses = model(images, targets)
    loss = sum(losses.values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    dt = time.perf_counter() - t
    times.append(dt)
    rss.append(rss_mb())
    print(f"torch iter {i+1}: {dt:.2f} s, loss {loss.item():.4f}, RSS {rss[-1]:.0f} MB", flush=True)
n = len(times)
skip = min(2, n - 1)
mean = sum(times[skip:]) / (n - skip)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch summary: {n} iterations, mean {mean:.2f} s/it over iterations {skip+1}-{n}, peak RSS {peak:.0f} MB, "
      f"RSS first-third max {max(rss[:max(1, n//3)]):.0f} MB, last-third max {max(rss[-max(1, n//3):]):.0f} MB")
