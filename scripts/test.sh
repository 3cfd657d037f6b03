#!/usr/bin/env bash
# The project's test command (README, .ci/run): formatting, vet, unit tests.
# Long runs (full-size parity, learning curves) live behind -short / build
# tags and in scripts/.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
# ONNX Runtime parity of the exporter (export/ort_test.go) runs when Node.js
# is present: install onnxruntime-node (its CPU binaries are in the npm
# package; --ignore-scripts skips the optional CUDA download). Without Node
# or without the registry the tests skip and say why.
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ ! -d scripts/onnx/node_modules/onnxruntime-node ]; then
    (cd scripts/onnx && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
      echo "scripts/test.sh: npm ci in scripts/onnx failed; the ONNX Runtime comparisons will be skipped"
  fi
  export SKD_ORT_R50=1 # the torchvision-exact R50 comparison too (~30 s)
else
  echo "scripts/test.sh: node not found; the ONNX Runtime comparisons (export/ort_test.go) will be skipped"
fi
go test -short -count=1 -timeout 30m ./... "$@"
