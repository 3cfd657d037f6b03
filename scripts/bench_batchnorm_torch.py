"""PyTorch side of layers' BenchmarkBatchNormTrain: F.batch_norm (training)
+ residual + ReLU, forward and backward on 4x64x80x80, 2 threads.

  /usr/bin/python3 scripts/bench_batchnorm_torch.py
  go test -run XXX -bench BatchNormTrain -benchtime 50x ./layers
"""
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
x = torch.randn(4, 64, 80, 80, requires_grad=True)
res = torch.randn(4, 64, 80, 80, requires_grad=True)
w = torch.ones(64, requires_grad=True)
b = torch.zeros(64, requires_grad=True)
rm, rv = torch.zeros(64), torch.ones(64)
R = torch.randn(4, 64, 80, 80)


def step():
    y = F.relu(F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5) + res)
    (y * R).sum().backward()


for _ in range(5):
    step()
ts = []
for _ in range(50):
    t = time.perf_counter()
    step()
    ts.append(time.perf_counter() - t)
ts.sort()
print("torch BN+res+ReLU fwd+bwd 4x64x80x80: median %.3f ms" % (1000 * ts[len(ts) // 2]))
