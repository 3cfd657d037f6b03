#!/usr/bin/env bash
# NMS timing, Go against torchvision on the same 10k boxes. Run under the
# shared benchmark lock:  flock /tmp/bench.lock bash scripts/boxes_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench 'NMS10k' -benchtime 2s -count 1 ./boxes/
/usr/bin/python3 scripts/boxes_bench.py
