#!/usr/bin/python3
"""Times the kernels benchmarks of package kernels with PyTorch on the CPU.

Same workloads as kernels/conv_bench_test.go and gemm_bench_test.go:
  Conv3x3_64_56: one 3x3 conv 64->64 at 56x56, batch 1, forward+backward
                 (data and weight), no bias.
  Bottleneck:    1x1 256->64, 3x3 64->64, 1x1 64->256 at 56x56, batch 1,
                 forward+backward, no BN/ReLU.
  Sgemm/N:       N x N x N matmul.
Prints one line per benchmark: "name median_ms". Run with /usr/bin/python3
(torch 1.13); threads default to 2 like the Go side.
"""
import argparse
import statistics
import time

import torch


def median_ms(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    # Conv3x3_64_56: x needs a gradient so that backward-data runs too.
    x = torch.randn(1, 64, 56, 56, requires_grad=True)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)
    layers = [conv]

    def make(mods, inp):
        with torch.no_grad():
            y = inp
            for m in mods:
                y = m(y)
        gy = torch.randn_like(y)

        def run():
            inp.grad = None
            for m in mods:
                m.weight.grad = None
            y = inp
            for m in mods:
                y = m(y)
            y.backward(gy)
        return run

    print("Conv3x3_64_56 %.3f" % median_ms(make(layers, x), args.warmup, args.reps))

    xb = torch.randn(1, 256, 56, 56, requires_grad=True)
    bott = [
        torch.nn.Conv2d(256, 64, 1, bias=False),
        torch.nn.Conv2d(64, 64, 3, padding=1, bias=False),
        torch.nn.Conv2d(64, 256, 1, bias=False),
    ]
    print("Bottleneck %.3f" % median_ms(make(bott, xb), args.warmup, args.reps))

    for n in (256, 512, 1024):
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        c = torch.empty(n, n)
        print("Sgemm/%d %.3f" % (n, median_ms(lambda: torch.mm(a, b, out=c), args.warmup, args.reps)))


if __name__ == "__main__":
    main()
