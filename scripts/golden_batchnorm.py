"""Golden values for layers' training-mode BatchNorm op (PyTorch).

Run: /usr/bin/python3 scripts/golden_batchnorm.py
Writes layers/testdata/batchnorm.{json,bin}.

torch.nn.functional.batch_norm(training=True, momentum=0.1, eps=1e-5) on
detrand inputs (scripts/golden_common.py; the Go test rebuilds them from
their names), fused with a residual add and ReLU as the backbone uses it:
forward, the gradients of sum(y * R) by autograd (float64 from the float32
inputs), and the running statistics after two forward passes starting from
(0, 1). The input has a large mean (3) to exercise the variance's precision.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common as gc  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "layers", "testdata", "batchnorm")
N, C, H, W = 3, 6, 5, 7


def t(arr, shape):
    return torch.from_numpy(np.asarray(arr, dtype=np.float32).reshape(shape)).double().requires_grad_(True)


def main():
    w = gc.Writer(max_count=1 << 16)
    for tag, res, relu in (("plain", False, False), ("relu", False, True), ("res_relu", True, True)):
        p = "bn_" + tag
        x = t(gc.affine(p + "/x", N * C * H * W, 1.0, 4.0), [N, C, H, W])
        gamma = t(gc.affine(p + ".weight", C, 0.5, 1.0), [C])
        beta = t(gc.symmetric(p + ".bias", C, 0.5), [C])
        r = t(gc.symmetric(p + "/res", N * C * H * W, 1.0), [N, C, H, W])
        R = torch.from_numpy(gc.symmetric(p + "/R", N * C * H * W, 1.0).reshape(N, C, H, W)).double()
        rm = torch.zeros(C, dtype=torch.float64)
        rv = torch.ones(C, dtype=torch.float64)
        for _ in range(2):
            y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
        if res:
            y = y + r
        if relu:
            y = F.relu(y)
        (y * R).sum().backward()
        w.add(p + "/y", y.detach().numpy())
        w.add(p + "/dx", x.grad.numpy())
        w.add(p + "/dgamma", gamma.grad.numpy())
        w.add(p + "/dbeta", beta.grad.numpy())
        if res:
            w.add(p + "/dres", r.grad.numpy())
        w.add(p + "/running_mean", rm.numpy())
        w.add(p + "/running_var", rv.numpy())
    w.save(OUT, {"torch": torch.__version__, "generator": "scripts/golden_batchnorm.py", "shape": [N, C, H, W]})
    print("wrote", OUT + ".{json,bin}")


if __name__ == "__main__":
    main()
