#!/usr/bin/env bash
# Full-size parity with torchvision 0.14: ResNet-50/101 bodies at 800x1088
# and 608x800, R50-FPN (fasterrcnn_resnet50_fpn's backbone) at 2x512x512 and
# 800x1216, forward and gradients. Needs Debian's python3-torch and
# python3-torchvision (/usr/bin/python3). Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-$(mktemp -d)}
/usr/bin/python3 scripts/golden_backbone.py --full "$dir"
SKD_GOLDEN_FULL="$dir" go test -count=1 -timeout 60m -v -run 'TestFullSizeParity' ./backbone/ ./fpn/ | grep -E 'relative|PASS|FAIL|ok'
