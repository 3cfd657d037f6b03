#!/usr/bin/env bash
# End-to-end check of kddetect against torchvision 0.14 on a full-size
# fasterrcnn_resnet50_fpn: DIR must hold a torchvision state dict frcnn.pth
# and some .png/.jpg images (scripts/golden_detector.py --full DIR writes
# both). Needs Debian's python3-torch/torchvision (/usr/bin/python3).
# A few minutes on 2 cores; run it under the benchmark lock.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/infer_full_check.sh DIR}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/kddetect" ./cmd/kddetect
"$out/kddetect" --config configs/torchvision/fasterrcnn_resnet50_fpn.yaml --weights "$dir/frcnn.pth" \
  --images "$dir" --out "$out/results.json" --quiet
/usr/bin/python3 scripts/infer_full_check.py --weights "$dir/frcnn.pth" --images "$dir" --results "$out/results.json"
