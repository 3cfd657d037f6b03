#!/usr/bin/python3
"""Golden values for package data (run with Debian's /usr/bin/python3:
torch 1.13 / torchvision 0.14).

Writes data/testdata/resize_golden.json:
  interp: torch.nn.functional.interpolate(mode='bilinear', align_corners=False,
          scale_factor=s, recompute_scale_factor=True) on small random images,
  sizes:  output sizes and box ratios of torchvision's
          GeneralizedRCNNTransform.resize for (h, w, min_size, max_size),
  pipeline: GeneralizedRCNNTransform (eval: normalise, resize, pad to 32) on a
          small uint8 RGB image (ToTensor /255 first).

Usage: /usr/bin/python3 scripts/data_golden.py
"""
import json
import os

import torch
import torch.nn.functional as F
from torchvision.models.detection.transform import GeneralizedRCNNTransform

torch.manual_seed(0)
out = {"interp": [], "sizes": [], "pipeline": None}


def r(t):
    return [round(float(v), 7) for v in t.flatten().tolist()]


for (c, h, w, s) in [(2, 5, 7, 1.7), (1, 9, 6, 0.45), (3, 4, 4, 2.0), (1, 11, 13, 0.77)]:
    x = torch.rand(1, c, h, w)
    y = F.interpolate(x, scale_factor=s, mode="bilinear", recompute_scale_factor=True, align_corners=False)
    out["interp"].append({"c": c, "h": h, "w": w, "scale": s, "in": r(x),
                          "out_h": y.shape[2], "out_w": y.shape[3], "out": r(y)})

sizes = [(480, 640, 800, 1333), (640, 480, 800, 1333), (427, 640, 800, 1333), (375, 500, 800, 1333),
         (500, 333, 800, 1333), (612, 612, 800, 1333), (200, 1000, 800, 1333), (320, 320, 512, 853),
         (333, 500, 600, 1000), (481, 640, 640, 1066), (359, 640, 800, 1333), (1000, 10, 800, 1333)]
for (h, w, mn, mx) in sizes:
    t = GeneralizedRCNNTransform(min_size=mn, max_size=mx, image_mean=[0, 0, 0], image_std=[1, 1, 1])
    t.eval()
    img = torch.zeros(3, h, w)
    boxes = torch.tensor([[1.0, 2.0, w - 3.0, h - 1.5]])
    ri, tgt = t.resize(img, {"boxes": boxes.clone()})
    out["sizes"].append({"h": h, "w": w, "min": mn, "max": mx, "out_h": ri.shape[1], "out_w": ri.shape[2],
                         "box_in": r(boxes), "box_out": r(tgt["boxes"])})

# Many random sizes: only the output size (exercises the float32 rounding).
rg = torch.Generator().manual_seed(2)
out["sizes_random"] = []
for _ in range(300):
    h, w = [int(v) for v in torch.randint(1, 1500, (2,), generator=rg)]
    mn = [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800, 320][int(torch.randint(0, 12, (1,), generator=rg))]
    mx = [1333, 1000, 853][int(torch.randint(0, 3, (1,), generator=rg))]
    t = GeneralizedRCNNTransform(min_size=mn, max_size=mx, image_mean=[0, 0, 0], image_std=[1, 1, 1])
    t.eval()
    ri, _ = t.resize(torch.zeros(1, h, w), None)
    out["sizes_random"].append([h, w, mn, mx, ri.shape[1], ri.shape[2]])

g = torch.Generator().manual_seed(1)
img8 = torch.randint(0, 256, (3, 13, 17), generator=g, dtype=torch.uint8)
t = GeneralizedRCNNTransform(min_size=20, max_size=40, image_mean=[0.485, 0.456, 0.406],
                             image_std=[0.229, 0.224, 0.225])
t.eval()
il, _ = t([img8.float() / 255.0])
out["pipeline"] = {"h": 13, "w": 17, "min": 20, "max": 40, "in": [int(v) for v in img8.flatten().tolist()],
                   "image_size": list(il.image_sizes[0]), "batch_shape": list(il.tensors.shape),
                   "out": r(il.tensors)}

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "testdata", "resize_golden.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print("wrote", path, os.path.getsize(path), "bytes")
for s in out["sizes"]:
    print(s["h"], s["w"], s["min"], s["max"], "->", s["out_h"], s["out_w"], s["box_out"])

# A CMYK (Adobe) JPEG: four 8x8 quadrants cyan, magenta, yellow, black
# (C,M,Y,K in {0,255}, where every CMYK->RGB formula agrees), for the decoder test.
from PIL import Image  # noqa: E402

cm = Image.new("CMYK", (16, 16))
px = cm.load()
for y in range(16):
    for x in range(16):
        q = (y // 8) * 2 + (x // 8)
        px[x, y] = [(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255)][q]
cpath = os.path.join(os.path.dirname(path), "cmyk.jpg")
cm.save(cpath, quality=95)
rgb = Image.open(cpath).convert("RGB")
print("wrote", cpath, "PIL RGB at quadrant centres:", [rgb.getpixel((x, y)) for (x, y) in [(4, 4), (12, 4), (4, 12), (12, 12)]])
