"""Golden values for layers' Linear op and detection losses (PyTorch).

Run: /usr/bin/python3 scripts/golden_losses.py
Writes layers/testdata/losses.{json,bin}.

Inputs are detrand values (scripts/golden_common.py) that the Go test
rebuilds from their names; sampled indices and targets are stored as arrays
(small integers are exact in float32). References are computed by torch's
own functions (F.linear, F.binary_cross_entropy_with_logits,
F.cross_entropy, F.smooth_l1_loss, F.l1_loss) and autograd, in float64 from
the float32 inputs, then stored as float32.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common as gc  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "layers", "testdata", "losses")


def inp(name, shape, scale):
    n = int(np.prod(shape))
    t = torch.from_numpy(gc.symmetric(name, n, scale).reshape(shape)).double()
    return t.requires_grad_(True)


def ints(name, n, hi):
    """n integers in [0, hi) from detrand uniforms."""
    return np.minimum((gc.uniform(name, n) * hi).astype(np.int64), hi - 1)


def main():
    w = gc.Writer(max_count=1 << 20)
    meta = {}

    # --- Linear: x [K, C, 7, 7] flattened, 392 -> 16, with and without ReLU.
    K, C, O = 6, 8, 16
    for relu in (False, True):
        tag = "linear_relu" if relu else "linear"
        x = inp(tag + "/x", [K, C, 7, 7], 1.0)
        wt = torch.from_numpy(gc.param(tag + ".weight", [O, C * 49])).double().requires_grad_(True)
        b = torch.from_numpy(gc.param(tag + ".bias", [O])).double().requires_grad_(True)
        y = F.linear(x.flatten(1), wt, b)
        if relu:
            y = F.relu(y)
        r = torch.from_numpy(gc.symmetric(tag + "/R", K * O, 1).reshape(K, O)).double()
        (y * r).sum().backward()
        w.add(tag + "/y", y.detach().numpy())
        w.add(tag + "/dx", x.grad.numpy())
        w.add(tag + "/dw", wt.grad.numpy())
        w.add(tag + "/db", b.grad.numpy())

    # --- SigmoidBCE: two logits tensors, a flat index space, repeated
    # indices, hard and soft labels, norm = number of samples.
    shapes = [[2, 3, 4, 5], [2, 3, 2, 3]]
    xs = [inp("bce/x%d" % i, s, 6.0) for i, s in enumerate(shapes)]
    total = sum(int(np.prod(s)) for s in shapes)
    ns = 50
    idx = ints("bce/index", ns, total)
    idx[1] = idx[0]  # a repeated sample: gradients accumulate
    tgt = (gc.uniform("bce/target", ns) < 0.4).astype(np.float32)
    tgt[3] = 0.25  # a soft label
    flat = torch.cat([x.reshape(-1) for x in xs])
    loss = F.binary_cross_entropy_with_logits(
        flat[torch.from_numpy(idx)], torch.from_numpy(tgt).double(), reduction="sum") / ns
    loss.backward()
    w.add("bce/index", idx)
    w.add("bce/target", tgt)
    w.add("bce/loss", [loss.item()])
    for i, x in enumerate(xs):
        w.add("bce/dx%d" % i, x.grad.numpy())

    # --- SoftmaxCE: [K, C] logits, padding rows (label -1), mean over the
    # labelled rows; a second case with large logits.
    for tag, scale in (("ce", 3.0), ("ce_large", 60.0)):
        K, C = 12, 5
        x = inp(tag + "/x", [K, C], scale)
        lab = ints(tag + "/label", K, C)
        lab[[2, 7, 11]] = -1
        valid = torch.from_numpy(lab >= 0)
        n = int(valid.sum())
        loss = F.cross_entropy(x[valid], torch.from_numpy(lab[lab >= 0]), reduction="mean")
        loss.backward()
        w.add(tag + "/label", lab)
        w.add(tag + "/norm", [n])
        w.add(tag + "/loss", [loss.item()])
        w.add(tag + "/dx", x.grad.numpy())

    # --- BoxRegression, RoI head: deltas [K, 4*C], class-specific samples,
    # stride 1, smooth-L1 beta 1/9 summed / number of sampled RoIs.
    K, NC = 10, 3
    for tag, beta in (("box_roi", 1.0 / 9), ("box_roi_l1", 0.0)):
        x = inp(tag + "/x", [K, 4 * NC], 0.5)
        fg = np.array([0, 2, 3, 5, 6, 9])
        cls = ints(tag + "/cls", len(fg), NC)
        base = (fg * 4 * NC + cls * 4).astype(np.int64)
        tgt = gc.symmetric(tag + "/target", len(fg) * 4, 0.6).reshape(-1, 4)
        norm = 16  # sampled RoIs, foreground and background
        sel = x.reshape(-1)[torch.from_numpy(base[:, None] + np.arange(4)[None, :])]
        t = torch.from_numpy(tgt).double()
        if beta > 0:
            loss = F.smooth_l1_loss(sel, t, beta=beta, reduction="sum") / norm
        else:
            loss = F.l1_loss(sel, t, reduction="sum") / norm
        loss.backward()
        w.add(tag + "/base", base)
        w.add(tag + "/target", tgt)
        w.add(tag + "/norm", [norm])
        w.add(tag + "/loss", [loss.item()])
        w.add(tag + "/dx", x.grad.numpy())
        meta[tag + "/beta"] = beta

    # --- BoxRegression, RPN: two levels of NCHW deltas [N, A*4, H, W],
    # per-sample stride H*W of its level, smooth-L1 beta 1/9 / num sampled.
    N, A = 2, 3
    hw = [(4, 5), (2, 3)]
    xs = [inp("box_rpn/x%d" % l, [N, A * 4, h, ww], 0.5) for l, (h, ww) in enumerate(hw)]
    sizes = [N * A * 4 * h * ww for h, ww in hw]
    offs = [0, sizes[0]]
    ns = 14
    lvl = ints("box_rpn/level", ns, 2)
    bases, strides = [], []
    for i in range(ns):
        h, ww = hw[lvl[i]]
        n = ints("box_rpn/n%d" % i, 1, N)[0]
        a = ints("box_rpn/a%d" % i, 1, A)[0]
        pos = ints("box_rpn/p%d" % i, 1, h * ww)[0]
        bases.append(offs[lvl[i]] + n * A * 4 * h * ww + a * 4 * h * ww + pos)
        strides.append(h * ww)
    bases, strides = np.array(bases), np.array(strides)
    tgt = gc.symmetric("box_rpn/target", ns * 4, 0.6).reshape(-1, 4)
    norm = 40
    flat = torch.cat([x.reshape(-1) for x in xs])
    sel = flat[torch.from_numpy(bases[:, None] + np.arange(4)[None, :] * strides[:, None])]
    loss = F.smooth_l1_loss(sel, torch.from_numpy(tgt).double(), beta=1.0 / 9, reduction="sum") / norm
    loss.backward()
    w.add("box_rpn/base", bases)
    w.add("box_rpn/stride", strides)
    w.add("box_rpn/target", tgt)
    w.add("box_rpn/norm", [norm])
    w.add("box_rpn/loss", [loss.item()])
    for i, x in enumerate(xs):
        w.add("box_rpn/dx%d" % i, x.grad.numpy())

    meta["torch"] = torch.__version__
    meta["generator"] = "scripts/golden_losses.py"
    w.save(OUT, meta)
    print("wrote", OUT + ".{json,bin}")


if __name__ == "__main__":
    main()
