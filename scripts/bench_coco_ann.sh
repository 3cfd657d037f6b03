#!/usr/bin/env bash
# COCO-size annotation loading: the project's two loaders against
# pycocotools' COCO() (or its exact steps), side by side in one run, with
# wall time and peak RSS (/usr/bin/time -v). Writes the ~450 MB file once.
#   bash scripts/bench_coco_ann.sh [FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
f=${1:-datasets/coco_size/instances_train2017_size.json}
mkdir -p "$(dirname "$f")" bin
go build -o bin/ ./cmd/kddata ./scripts/bench_coco_ann
[ -f "$f" ] || bin/kddata coco-ann --out "$f"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); file $(du -m "$f" | cut -f1) MB"
run() { # label command...
  local out; out=$( { /usr/bin/time -v "${@:2}" 2>&1 1>&3; } 3>&1 )
  echo "$out" | grep -v '^\s' | grep -v '^$' || true
  echo "  $1 peak RSS: $(echo "$out" | awk '/Maximum resident/ {printf "%.0f MB", $6/1024}')"
}
for i in 1 2; do
  run "go train loader" bin/bench_coco_ann train "$f"
  run "go eval loader" bin/bench_coco_ann eval "$f"
  run "python COCO()" /usr/bin/python3 scripts/bench_coco_ann.py "$f"
done
