#!/usr/bin/env bash
# Time per image of the exported model in ONNX Runtime (onnxruntime-node,
# CPU, 2 intra-op threads) beside the Go detector (kddetect's
# FasterRCNN.Detect, GOMAXPROCS=2), same machine, same run, same resized
# tensors, batch 1, one warm-up run per image then ITERS timed runs.
# Run it on a quiet machine (flock /tmp/bench.lock bash scripts/bench_onnx.sh).
#
#   scripts/bench_onnx.sh [CONFIG] [WEIGHTS|-] [IMAGES] [ITERS] [--set k=v ...]
#
# Defaults: configs/torchvision/fasterrcnn_resnet50_fpn.yaml with seeded
# weights ("-"), export/testdata/photos, 5 iterations, the config's input
# size (800 / 1333 for torchvision's).
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-configs/torchvision/fasterrcnn_resnet50_fpn.yaml}; weights=${2:--}
images=${3:-export/testdata/photos}; iters=${4:-5}
shift $(( $# < 4 ? $# : 4 ))
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/kdexport ./scripts/bench_onnx
if [ "$weights" = - ]; then
  weights=$work/seeded.safetensors
  "$work/bench_onnx" --config "$cfg" "$@" --save-seeded "$weights"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "config: $cfg $*; weights: $weights"
"$work/kdexport" --config "$cfg" --weights "$weights" --out "$work/model.onnx" "$@"
"$work/kdexport" inputs --config "$cfg" --images "$images" --out "$work/in" "$@"
g=$(GOMAXPROCS=2 "$work/bench_onnx" --config "$cfg" "$@" --weights "$weights" --inputs "$work/in" --iters "$iters")
echo "$g"
o=$(node scripts/onnx/ort_detect.js --model "$work/model.onnx" --inputs "$work/in" --out "$work/ort.json" --threads 2 --repeat "$iters" --timing "$work/timing.json")
echo "$o"
gm=$(echo "$g" | sed -nE 's/^go: ([0-9.]+) ms per image.*/\1/p')
om=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$work/timing.json')).ms_per_image.toFixed(1))")
awk -v a="$gm" -v b="$om" 'BEGIN{printf "per image: go %.1f ms, onnxruntime %.1f ms, go/ort %.2fx\n", a, b, a/b}'
