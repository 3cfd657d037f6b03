#!/usr/bin/env bash
# R50-FPN forward+backward (stages 2-4 trainable) side by side with PyTorch,
# same machine, same run. Usage: scripts/bench_r50fpn.sh [batch] [size] [iters]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2}; size=${2:-512}; iters=${3:-5}
go build -o /tmp/bench_r50fpn ./scripts/bench_r50fpn
for mode in "" "--forward"; do
  g=$(/tmp/bench_r50fpn -n "$n" -size "$size" -iters "$iters" $mode)
  t=$(/usr/bin/python3 scripts/bench_r50fpn_torch.py --n "$n" --size "$size" --iters "$iters" $mode)
  echo "$g"; echo "$t"
  gm=$(echo "$g" | sed -E 's/.*median ([0-9]+) ms.*/\1/'); tm=$(echo "$t" | sed -E 's/.*median ([0-9]+) ms.*/\1/')
  gr=$(echo "$g" | sed -E 's/.*peak RSS ([0-9]+) kB.*/\1/'); tr=$(echo "$t" | sed -E 's/.*peak RSS ([0-9]+) kB.*/\1/')
  awk -v a="$gm" -v b="$tm" -v c="$gr" -v d="$tr" 'BEGIN{printf "ratio go/torch: time %.2fx, peak RSS %.2fx\n", a/b, c/d}'
done
