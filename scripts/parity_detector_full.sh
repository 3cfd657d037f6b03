#!/usr/bin/env bash
# Full-size Faster R-CNN parity with torchvision 0.14 (not in CI): a real
# fasterrcnn_resnet50_fpn with deterministic weights and a confident
# predictor (scripts/golden_detector.py --full), three PNG images of
# different sizes, torchvision's detections with its own transform (min 800,
# max 1333); then ours: the .pth loaded into model.New from
# configs/torchvision/fasterrcnn_resnet50_fpn.yaml, package data's eval
# transform, Detect, boxes mapped back to original pixels, matched by class
# with IoU >= 0.999 and |score diff| <= 1e-4 (scripts/parity_detector).
# When cmd/kddetect exists it is run on the same files as a final check.
# Needs /usr/bin/python3 with torch/torchvision; ~2 minutes and ~4 GB on 2 cores.
# Usage: scripts/parity_detector_full.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-$(mktemp -d)}
cfg=configs/torchvision/fasterrcnn_resnet50_fpn.yaml
/usr/bin/python3 scripts/golden_detector.py --full "$dir"
go build -o "$dir/parity_detector" ./scripts/parity_detector
status=0
"$dir/parity_detector" -dir "$dir" -config "$cfg" || status=$?
if [ -d cmd/kddetect ]; then
  if go build -o "$dir/kddetect" ./cmd/kddetect 2>"$dir/kddetect_build.log"; then
    "$dir/kddetect" --config "$cfg" --weights "$dir/frcnn.pth" --images "$dir" --out "$dir/kddetect.json" --quiet \
      && "$dir/parity_detector" -dir "$dir" -results "$dir/kddetect.json" || status=$?
  else
    echo "kddetect does not build yet (see $dir/kddetect_build.log): skipped"
  fi
fi
exit $status
