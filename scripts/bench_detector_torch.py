#!/usr/bin/python3
"""torchvision side of scripts/bench_detector.sh: fasterrcnn_resnet50_fpn's
architecture as trained from ImageNet weights (FrozenBatchNorm2d,
trainable_layers=3, 91 classes), deterministic weights
(golden_common.fill_model), the transform bypassed as on the Go side:
inference = backbone + rpn + roi_heads in eval mode under no_grad (batch 1);
train step = the same in train mode with targets, sum of the 4 losses,
backward (no optimizer)."""
import argparse
import os
import resource
import sys
import time

import numpy as np
import torch
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.image_list import ImageList
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common as gc  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=1)
ap.add_argument("--size", type=int, default=512)
ap.add_argument("--iters", type=int, default=5)
ap.add_argument("--train", action="store_true")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--keep-denormals", action="store_true",
                help="leave flush-to-zero off (the deterministic weights drive some activations into denormals, "
                     "which slows torch's CPU kernels by up to 2x)")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.set_flush_denormal(not a.keep_denormals)
torch.manual_seed(0)
model = FasterRCNN(_resnet_fpn_extractor(torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d), 3), 91)
gc.fill_model(model)
n, s = a.n, a.size
x = torch.from_numpy(gc.symmetric("bench_images", n * 3 * s * s, 1.0).reshape(n, 3, s, s))
images = ImageList(x, [(s, s)] * n)
k = s / 512
targets = [{"boxes": torch.tensor([[40, 60, 200, 300], [250, 100, 480, 400], [100, 350, 180, 500]], dtype=torch.float32) * k,
            "labels": torch.tensor([1, 18, 3])} for _ in range(n)]
times, first, dets = [], 0.0, 0
model.train(a.train)
for i in range(a.iters + 1):
    t = time.perf_counter()
    if a.train:
        model.zero_grad(set_to_none=True)
        feats = model.backbone(images.tensors)
        props, l1 = model.rpn(images, feats, targets)
        _, l2 = model.roi_heads(feats, props, images.image_sizes, targets)
        loss = sum(l1.values()) + sum(l2.values())
        loss.backward()
    else:
        with torch.no_grad():
            feats = model.backbone(images.tensors)
            props, _ = model.rpn(images, feats)
            d, _ = model.roi_heads(feats, props, images.image_sizes)
            dets = len(d[0]["scores"])
    ms = (time.perf_counter() - t) * 1000
    if i == 0:
        first = ms
    else:
        times.append(ms)
times.sort()
mode = "train step" if a.train else f"inference ({dets} detections)"
mode += ", denormals kept" if a.keep_denormals else ", flush-denormal"
print(f"torch Faster R-CNN R50-FPN {mode} {n}x3x{s}x{s}: median {times[len(times)//2]:.0f} ms, best {times[0]:.0f} ms "
      f"(first run {first:.0f} ms), peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} kB")
