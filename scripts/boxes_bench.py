#!/usr/bin/python3
"""Time torchvision.ops.nms (CPU, one thread) on boxes/testdata/nms10k.bin at
IoU 0.7, the boxes BenchmarkNMS10k uses. Run through scripts/boxes_bench.sh."""
import os
import struct
import time

import numpy as np
import torch
import torchvision

torch.set_num_threads(1)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "boxes", "testdata", "nms10k.bin")
raw = open(path, "rb").read()
n, nt = struct.unpack_from("<ii", raw, 0)
off = 8 + 8 * nt
boxes = torch.from_numpy(np.frombuffer(raw, dtype="<f4", count=4 * n, offset=off).reshape(n, 4).copy())
scores = torch.from_numpy(np.frombuffer(raw, dtype="<f4", count=n, offset=off + 16 * n).copy())
torchvision.ops.nms(boxes, scores, 0.7)  # warm-up
times = []
for _ in range(10):
    t0 = time.perf_counter()
    keep = torchvision.ops.nms(boxes, scores, 0.7)
    times.append(time.perf_counter() - t0)
times.sort()
print("torchvision %s ops.nms 10k boxes IoU 0.7: kept %d, median %.2f ms, min %.2f ms over 10 runs"
      % (torchvision.__version__, keep.numel(), 1e3 * times[len(times) // 2], 1e3 * times[0]))
