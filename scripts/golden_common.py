"""Shared helpers of the golden-file generators (run with /usr/bin/python3).

detrand mirrors internal/detrand bit for bit: weights and inputs are made
from their names, so the Go tests rebuild them instead of committing them.
The golden format is a pair NAME.json (shapes, offsets, subsampling step)
+ NAME.bin (float32 little-endian), read by internal/golden.
"""
import json
import math

import numpy as np

MASK = (1 << 64) - 1


def seed(name):
    h = 0xcbf29ce484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001b3) & MASK
    return h


def uniform(name, n):
    s = np.uint64(seed(name))
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = s + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def symmetric(name, n, scale):
    return ((2 * uniform(name, n) - 1) * scale).astype(np.float32)


def affine(name, n, lo, span):
    return (lo + span * uniform(name, n)).astype(np.float32)


def param(name, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    is_bn = ("bn" in name or name.endswith("downsample.1.weight")
             or name.endswith("downsample.1.bias") or "running_" in name)
    if name.endswith("running_var"):
        v = affine(name, n, 0.5, 1)
    elif name.endswith("running_mean"):
        v = symmetric(name, n, 0.1)
    elif name.endswith(".weight") and is_bn and len(shape) == 1:
        v = affine(name, n, 0.3, 0.5)
    elif len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        v = symmetric(name, n, math.sqrt(6 / fan_in))
    else:
        v = symmetric(name, n, 0.1)
    return v.reshape(shape)


def fill_model(model, prefix=""):
    import torch
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if name.endswith("num_batches_tracked"):
                continue
            t.copy_(torch.from_numpy(param(prefix + name, list(t.shape))))


class Writer:
    """Collects arrays, subsampled so that each keeps at most max_count values."""

    def __init__(self, max_count=4096):
        self.arrays, self.chunks, self.offset, self.max_count = {}, [], 0, max_count

    def add(self, name, arr, max_count=None):
        a = np.ascontiguousarray(np.asarray(arr, dtype=np.float32)).reshape(-1)
        limit = max_count or self.max_count
        step = max(1, -(-a.size // limit))
        sub = a[::step]
        self.arrays[name] = {"shape": list(np.shape(arr)), "offset": self.offset,
                             "count": int(sub.size), "step": step,
                             "absmax": float(np.abs(a).max()) if a.size else 0.0}
        self.chunks.append(sub.astype("<f4").tobytes())
        self.offset += sub.size

    def save(self, path_no_ext, meta=None):
        with open(path_no_ext + ".bin", "wb") as f:
            for c in self.chunks:
                f.write(c)
        with open(path_no_ext + ".json", "w") as f:
            json.dump({"meta": meta or {}, "arrays": self.arrays}, f, indent=1, sort_keys=True)
