#!/usr/bin/env bash
# Thread scaling of the detector training step (R50-FPN, batch 2, SIZE^2,
# forward + losses + backward), the Go side (GOMAXPROCS=T) beside
# torchvision (torch.set_num_threads(T)) at each thread count, one process
# per point. Prints time, speed-up over one thread and parallel efficiency
# (speed-up / T) for both sides. Needs a quiet machine: run it under the
# benchmark lock,
#   flock /tmp/bench.lock bash scripts/bench_threads.sh [size] [iters] [threads...]
# Default threads: 1 2 4 8 16 capped at nproc. Set NOTORCH=1 to skip
# torchvision.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-512}; it=${2:-3}
shift $(( $# >= 2 ? 2 : $# ))
threads=("$@")
if [ ${#threads[@]} -eq 0 ]; then
  for t in 1 2 4 8 16; do [ "$t" -le "$(nproc)" ] && threads+=("$t"); done
fi
go build -o /tmp/bench_detector_threads ./scripts/bench_detector
echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'); $(date -u +%Y-%m-%dT%H:%MZ); load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%7s %10s %8s %6s %12s %8s %6s\n" threads "Go ms" speedup eff "torch ms" speedup eff
g1=""; t1=""
for t in "${threads[@]}"; do
  g=$(GOMAXPROCS=$t /tmp/bench_detector_threads -n 2 -size "$size" -iters "$it" -train | sed -E 's/.*median ([0-9]+) ms.*/\1/')
  tm=-
  if [ -z "${NOTORCH:-}" ]; then
    tm=$(OMP_NUM_THREADS=$t /usr/bin/python3 scripts/bench_detector_torch.py --n 2 --size "$size" --iters "$it" --train --threads "$t" | sed -E 's/.*median ([0-9]+) ms.*/\1/')
  fi
  [ -z "$g1" ] && g1=$g
  [ -z "$t1" ] && t1=$tm
  awk -v t="$t" -v g="$g" -v g1="$g1" -v tm="$tm" -v t1="$t1" 'BEGIN{
    gs=g1/g; line=sprintf("%7d %10d %8.2f %5.0f%%", t, g, gs, 100*gs/t)
    if (tm != "-") { ts=t1/tm; line=line sprintf(" %12d %8.2f %5.0f%%", tm, ts, 100*ts/t) }
    print line }'
done
