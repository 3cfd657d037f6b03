"""Golden values for package kd (distillation losses) and its benchmark.

Run: /usr/bin/python3 scripts/golden_kd.py            (writes kd/testdata/kd.{json,bin})
     /usr/bin/python3 scripts/golden_kd.py --bench    (times the SSIM loss fwd+bwd)

References, computed in float64 from the float32 detrand inputs:
  * the published SSIM loss, written in plain torch the way kornia 0.6 does
    it (kornia is not installed): min-max normalisation psi (per (n, c)
    plane or per image), a normalised Gaussian window (outer product of the
    normalised 1-D kernel), filter2d with reflect padding ('same'),
    ssim = num / (den + 1e-12), loss = mean(clamp((1 - ssim) / 2, 0, 1));
    'valid' crops the map; the small-map rule of kd.SSIMConfig.
    EffectiveWindow is mirrored by effective_window();
  * skimage.metrics.structural_similarity (gaussian_weights, sigma 1.5,
    use_sample_covariance False, data_range 1) on the normalised maps: only
    the interior of its map is comparable (scipy's 'reflect' border differs);
  * l1 / l2 (F.l1_loss, F.mse_loss), mmrazor's PKDLoss, ChannelWiseDivergence
    and MGD (mask from detrand uniforms, weights from golden_common.param),
    and a two-level adapter + SSIM distillation total;
gradients by torch autograd.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common as gc  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "kd", "testdata", "kd")

C1, C2, EPS = 0.01 ** 2, 0.03 ** 2, 1e-12


def inp(name, shape, scale=1.0):
    n = int(np.prod(shape))
    return torch.from_numpy(gc.symmetric(name, n, scale).reshape(shape)).double()


def effective_window(k, h, w, padding):
    m = min(h, w)
    if padding == "valid":
        kmax = m if m % 2 == 1 else m - 1
    else:
        kmax = 2 * m - 1
    return min(k, max(kmax, 1))


def gauss1d(k, sigma, dtype=torch.float64):
    x = torch.arange(k, dtype=dtype) - k // 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def filter2d_reflect(img, k, sigma):
    c = img.shape[1]
    g = gauss1d(k, sigma, img.dtype)
    w2 = torch.outer(g, g).expand(c, 1, k, k)
    p = k // 2
    if p > 0:
        img = F.pad(img, (p, p, p, p), mode="reflect")
    return F.conv2d(img, w2, groups=c)


def minmax(x, normalize):
    if normalize == "none":
        return x
    dims = (2, 3) if normalize == "channel" else (1, 2, 3)
    mn = torch.amin(x, dim=dims, keepdim=True)
    mx = torch.amax(x, dim=dims, keepdim=True)
    return (x - mn) / (mx - mn)


def ssim_map(x, t, k, sigma, terms):
    mu1, mu2 = filter2d_reflect(x, k, sigma), filter2d_reflect(t, k, sigma)
    s1 = filter2d_reflect(x * x, k, sigma) - mu1 * mu1
    s2 = filter2d_reflect(t * t, k, sigma) - mu2 * mu2
    s12 = filter2d_reflect(x * t, k, sigma) - mu1 * mu2
    if terms == "full":
        num = (2 * mu1 * mu2 + C1) * (2 * s12 + C2)
        den = (mu1 * mu1 + mu2 * mu2 + C1) * (s1 + s2 + C2)
        return num / (den + EPS)
    if terms == "cs":
        return (2 * s12 + C2) / (s1 + s2 + C2 + EPS)
    c3 = C2 / 2
    q = torch.sqrt(s1.clamp(min=0) * s2.clamp(min=0))
    return (s12 + c3) / (q + c3 + EPS)


def ssim_loss(x, t, window=11, sigma=1.5, padding="same", normalize="channel", terms="full"):
    h, w = x.shape[2:]
    k = effective_window(window, h, w, padding)
    m = ssim_map(minmax(x, normalize), minmax(t, normalize), k, sigma, terms)
    if padding == "valid":
        p = k // 2
        m = m[:, :, p:h - p, p:w - p]
    return torch.clamp((1 - m) / 2, 0, 1).mean()


def pkd_norm(f):
    n, c, h, w = f.shape
    f = f.permute(1, 0, 2, 3).reshape(c, -1)
    mean = f.mean(dim=-1, keepdim=True)
    std = f.std(dim=-1, keepdim=True)
    f = (f - mean) / (std + 1e-6)
    return f.reshape(c, n, h, w).permute(1, 0, 2, 3)


def cwd(s, t, tau):
    n, c, h, w = s.shape
    pt = F.softmax(t.reshape(-1, h * w) / tau, dim=1)
    ls = F.log_softmax(s.reshape(-1, h * w) / tau, dim=1)
    lt = F.log_softmax(t.reshape(-1, h * w) / tau, dim=1)
    return torch.sum(pt * lt - pt * ls) * tau ** 2 / (c * n)


SSIM_CASES = [
    # name, shape, options
    ("base", [2, 3, 32, 40], {}),
    ("level", [1, 4, 13, 17], {"normalize": "level"}),
    ("small6x7", [1, 2, 6, 7], {}),
    ("small4x5", [1, 2, 4, 5], {}),
    ("small2x3", [1, 1, 2, 3], {}),
    ("cs", [1, 3, 12, 14], {"terms": "cs"}),
    ("s", [1, 3, 12, 14], {"terms": "s"}),
    ("valid", [1, 2, 16, 19], {"padding": "valid"}),
    ("valid_small", [1, 2, 4, 6], {"padding": "valid"}),
    ("none", [1, 2, 10, 12], {"normalize": "none"}),
    ("win7", [2, 2, 9, 11], {"window": 7, "sigma": 1.0}),
]


def golden():
    w = gc.Writer(max_count=1 << 20)
    meta = {"ssim_cases": []}
    for name, shape, opts in SSIM_CASES:
        scale = 1.0
        x = inp("kd/ssim/%s/x" % name, shape, scale)
        t = inp("kd/ssim/%s/t" % name, shape, scale)
        if opts.get("normalize") == "none":  # raw features in [0, 1]
            x, t = (x + 1) / 2, (t + 1) / 2
        x.requires_grad_(True)
        loss = ssim_loss(x, t, **opts)
        loss.backward()
        w.add("ssim/%s/loss" % name, [loss.item()])
        w.add("ssim/%s/dx" % name, x.grad.numpy())
        meta["ssim_cases"].append({"name": name, "shape": shape, "opts": opts})

    # skimage on the normalised maps of the base case (interior only).
    from skimage.metrics import structural_similarity
    x = inp("kd/ssim/base/x", [2, 3, 32, 40])
    t = inp("kd/ssim/base/t", [2, 3, 32, 40])
    xn, tn = minmax(x, "channel").numpy(), minmax(t, "channel").numpy()
    maps = []
    for n in range(2):
        _, s = structural_similarity(xn[n].transpose(1, 2, 0), tn[n].transpose(1, 2, 0),
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1, win_size=11, channel_axis=-1, full=True)
        maps.append(s.transpose(2, 0, 1)[:, 5:-5, 5:-5])
    w.add("skimage/base/interior", np.stack(maps))

    # l1, l2, PKD, CWD on one level.
    shape = [2, 3, 5, 7]
    for name in ["l1", "l2", "pkd", "cwd1", "cwd2"]:
        x = inp("kd/%s/x" % name, shape, 2.0).requires_grad_(True)
        t = inp("kd/%s/t" % name, shape, 2.0)
        if name == "l1":
            loss = F.l1_loss(x, t)
        elif name == "l2":
            loss = F.mse_loss(x, t)
        elif name == "pkd":
            loss = F.mse_loss(pkd_norm(x), pkd_norm(t)) / 2
        else:
            loss = cwd(x, t, 1.0 if name == "cwd1" else 2.0)
        loss.backward()
        w.add("%s/loss" % name, [loss.item()])
        w.add("%s/dx" % name, x.grad.numpy())

    # MGD: adapter 3 -> 4, mask ratio 0.65, generator, alpha 2e-5.
    n, cs, ct, h, wd = 2, 3, 4, 6, 5
    x = inp("kd/mgd/x", [n, cs, h, wd]).requires_grad_(True)
    t = inp("kd/mgd/t", [n, ct, h, wd])
    prm = {}
    for pname, shp in [("distill.adapter.0.weight", [ct, cs, 1, 1]), ("distill.adapter.0.bias", [ct]),
                       ("distill.mgd.generator.0.0.weight", [ct, ct, 3, 3]), ("distill.mgd.generator.0.0.bias", [ct]),
                       ("distill.mgd.generator.0.2.weight", [ct, ct, 3, 3]), ("distill.mgd.generator.0.2.bias", [ct])]:
        prm[pname] = torch.from_numpy(gc.param(pname, shp)).double().requires_grad_(True)
    u = torch.from_numpy(gc.uniform("kd/mgd/mask", n * h * wd).reshape(n, 1, h, wd))
    mask = torch.where(u > 1 - 0.65, 0.0, 1.0).double()
    a = F.conv2d(x, prm["distill.adapter.0.weight"], prm["distill.adapter.0.bias"])
    g = F.relu(F.conv2d(a * mask, prm["distill.mgd.generator.0.0.weight"], prm["distill.mgd.generator.0.0.bias"], padding=1))
    g = F.conv2d(g, prm["distill.mgd.generator.0.2.weight"], prm["distill.mgd.generator.0.2.bias"], padding=1)
    loss = 2e-5 * F.mse_loss(g, t, reduction="sum") / n
    loss.backward()
    w.add("mgd/mask", mask.numpy())
    w.add("mgd/loss", [loss.item()])
    w.add("mgd/dx", x.grad.numpy())
    for pname, p in prm.items():
        w.add("mgd/d/" + pname, p.grad.numpy())

    # Two-level adapter + SSIM distillation, weight 2.
    shapes = [[2, 3, 12, 14], [2, 3, 6, 7]]
    total = 0
    xs, ads = [], {}
    for lv, shp in enumerate(shapes):
        x = inp("kd/dist/x%d" % lv, shp).requires_grad_(True)
        t = inp("kd/dist/t%d" % lv, [shp[0], 4] + shp[2:])
        wt = torch.from_numpy(gc.param("distill.adapter.%d.weight" % lv, [4, 3, 1, 1])).double().requires_grad_(True)
        bs = torch.from_numpy(gc.param("distill.adapter.%d.bias" % lv, [4])).double().requires_grad_(True)
        lv_loss = ssim_loss(F.conv2d(x, wt, bs), t)
        w.add("dist/level%d" % lv, [lv_loss.item()])
        total = total + 2 * lv_loss
        xs.append(x)
        ads[lv] = (wt, bs)
    total.backward()
    w.add("dist/total", [total.item()])
    for lv, x in enumerate(xs):
        w.add("dist/dx%d" % lv, x.grad.numpy())
        w.add("dist/dw%d" % lv, ads[lv][0].grad.numpy())
        w.add("dist/db%d" % lv, ads[lv][1].grad.numpy())

    meta["torch"] = torch.__version__
    w.save(OUT, meta)
    print("wrote", OUT + ".{json,bin}")


def bench():
    """SSIM loss fwd+bwd on a 5-level FPN pyramid, the Go benchmark's shapes."""
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    levels = [(200, 336), (100, 168), (50, 84), (25, 42), (13, 21)]
    xs, ts = [], []
    for i, (h, wd) in enumerate(levels):
        xs.append(torch.randn(2, 256, h, wd).requires_grad_(True))
        ts.append(torch.randn(2, 256, h, wd))
    reps = int(os.environ.get("REPS", "3"))
    times = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        loss = sum(ssim_loss(x, t) for x, t in zip(xs, ts))
        loss.backward()
        dt = time.perf_counter() - t0
        for x in xs:
            x.grad = None
        if r > 0:
            times.append(dt)
    print("torch %s threads %d: SSIM loss fwd+bwd, 5 levels 2x256x(200x336..13x21), float32: median %.3f s, best %.3f s"
          % (torch.__version__, torch.get_num_threads(), float(np.median(times)), min(times)))


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench()
    else:
        golden()
