#!/usr/bin/env bash
# Faster R-CNN R50-FPN side by side with torchvision 0.14, same machine, same
# run (run it under the lock: flock /tmp/bench.lock bash scripts/bench_detector.sh):
# inference at SIZExSIZE batch 1, and a training step (forward, losses,
# backward) at SIZExSIZE batch 2; transform bypassed on both sides.
# Usage: scripts/bench_detector.sh [size] [infer_iters] [train_iters]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-512}; ii=${2:-5}; ti=${3:-3}
go build -o /tmp/bench_detector ./scripts/bench_detector
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ)"
for mode in infer train; do
  if [ $mode = infer ]; then n=1; it=$ii; flag=""; else n=2; it=$ti; flag="--train"; fi
  g=$(/tmp/bench_detector -n $n -size "$size" -iters "$it" ${flag:+-train})
  t=$(/usr/bin/python3 scripts/bench_detector_torch.py --n $n --size "$size" --iters "$it" $flag)
  echo "$g"; echo "$t"
  gm=$(echo "$g" | sed -E 's/.*median ([0-9]+) ms.*/\1/'); tm=$(echo "$t" | sed -E 's/.*median ([0-9]+) ms.*/\1/')
  gr=$(echo "$g" | sed -E 's/.*peak RSS ([0-9]+) kB.*/\1/'); tr=$(echo "$t" | sed -E 's/.*peak RSS ([0-9]+) kB.*/\1/')
  awk -v m="$mode" -v a="$gm" -v b="$tm" -v c="$gr" -v d="$tr" 'BEGIN{printf "%s ratio go/torch: time %.2fx, peak RSS %.2fx\n", m, a/b, c/d}'
done
