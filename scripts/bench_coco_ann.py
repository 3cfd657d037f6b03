"""Time pycocotools' COCO() on an annotation file (peak RSS: run under
/usr/bin/time -v, scripts/bench_coco_ann.sh). Where pycocotools is not
installed (Debian has no package of it), it runs what COCO.__init__ does,
step for step: json.load of the file, then createIndex's dictionaries
(anns, imgs, cats, imgToAnns, catToImgs)."""
import json
import sys
import time
from collections import defaultdict

path = sys.argv[1]
t0 = time.time()
try:
    from pycocotools.coco import COCO
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(path)
    n_img, n_ann, how = len(coco.imgs), len(coco.anns), "pycocotools COCO()"
except ImportError:
    dataset = json.load(open(path, "r"))
    anns, cats, imgs = {}, {}, {}
    imgToAnns, catToImgs = defaultdict(list), defaultdict(list)
    for ann in dataset["annotations"]:
        imgToAnns[ann["image_id"]].append(ann)
        anns[ann["id"]] = ann
    for img in dataset["images"]:
        imgs[img["id"]] = img
    for cat in dataset["categories"]:
        cats[cat["id"]] = cat
    for ann in dataset["annotations"]:
        catToImgs[ann["category_id"]].append(ann["image_id"])
    n_img, n_ann, how = len(imgs), len(anns), "COCO() steps (json.load + createIndex; pycocotools not installed)"
print("python %s: %d images, %d annotations in %.2f s" % (how, n_img, n_ann, time.time() - t0))
