#!/usr/bin/env bash
# Exports a detector with kdexport, runs the ONNX model in ONNX Runtime
# (onnxruntime-node, CPU) and kddetect on the same photos, and compares
# their detections (same image and category, IoU >= 0.999, |dscore| <= 1e-4,
# at least 99% of detections): the command-line version of
# export/ort_test.go, for any config and weights.
#
#   scripts/onnx_check.sh CONFIG WEIGHTS [IMAGES (default export/testdata/photos)] [--set k=v ...]
#
# Needs node and `npm ci --ignore-scripts` in scripts/onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=$1; weights=$2; shift 2
images=export/testdata/photos
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then images=$1; shift; fi
sets=("$@")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/kdexport ./cmd/kddetect
"$work/kdexport" --config "$cfg" --weights "$weights" --out "$work/model.onnx" "${sets[@]}"
"$work/kdexport" inputs --config "$cfg" --images "$images" --out "$work/in" "${sets[@]}"
"$work/kddetect" --config "$cfg" --weights "$weights" --images "$images" --out "$work/kddetect.json" --quiet "${sets[@]}"
node scripts/onnx/ort_detect.js --model "$work/model.onnx" --inputs "$work/in" --out "$work/ort.json"
"$work/kdexport" compare "$work/kddetect.json" "$work/ort.json"
