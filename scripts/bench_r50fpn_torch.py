#!/usr/bin/python3
"""PyTorch side of scripts/bench_r50fpn.sh: the same R50-FPN, loss and batch."""
import argparse
import resource
import time

import torch
import torchvision
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=2)
ap.add_argument("--size", type=int, default=512)
ap.add_argument("--iters", type=int, default=5)
ap.add_argument("--forward", action="store_true")
a = ap.parse_args()
torch.set_num_threads(2)
torch.manual_seed(0)
m = _resnet_fpn_extractor(torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d), 3)
x = torch.randn(a.n, 3, a.size, a.size)
rs = None
times = []
for i in range(a.iters + 1):
    t = time.perf_counter()
    if a.forward:
        with torch.no_grad():
            feats = m(x)
            loss = sum((v * torch.ones_like(v)).sum() for v in feats.values())
    else:
        m.zero_grad(set_to_none=True)
        feats = m(x)
        if rs is None:
            rs = [torch.randn_like(v) for v in feats.values()]
        loss = sum((v * r).sum() for v, r in zip(feats.values(), rs))
        loss.backward()
    if i > 0:
        times.append((time.perf_counter() - t) * 1000)
times.sort()
mode = "fwd" if a.forward else "fwd+bwd"
print(f"torch R50-FPN {mode} {a.n}x3x{a.size}x{a.size}: median {times[len(times)//2]:.0f} ms, best {times[0]:.0f} ms, "
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} kB")
