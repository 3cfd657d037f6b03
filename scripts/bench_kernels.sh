#!/usr/bin/env bash
# Kernel benchmarks of package kernels against PyTorch 1.13 (CPU), measured
# side by side in one run: a 3x3 conv 64->64 at 56x56 and a ResNet-50
# bottleneck's three convs (fwd+bwd, batch 1), and square SGEMMs.
# Run it under the shared benchmark lock:
#   flock /tmp/bench.lock bash scripts/bench_kernels.sh
# Env: THREADS (default 2), COUNT (Go repetitions per round, default 7), REPS (torch
# repetitions per round, default 30). Times are in ms; ratio = Go/torch.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
COUNT=${COUNT:-7}
REPS=${REPS:-30}
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; date: $(date -u +%F); threads: $THREADS"
# Two alternating rounds (Go, torch, Go, torch) so that load from other
# processes on the shared machine hits both sides alike.
for round in 1 2; do
  GOMAXPROCS=$THREADS go test -run '^$' -bench '^(BenchmarkConv3x3_64_56|BenchmarkBottleneck|BenchmarkSgemm)$' \
    -benchtime 20x -count "$COUNT" -cpu "$THREADS" ./kernels/ >>"$tmp/go.txt"
  "$PY" scripts/bench_kernels_torch.py --threads "$THREADS" --reps "$REPS" >>"$tmp/torch.txt"
done

"$PY" - "$tmp/go.txt" "$tmp/torch.txt" <<'PYEOF'
import re, statistics, sys
go = {}
for line in open(sys.argv[1]):
    m = re.match(r"Benchmark(\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op", line)
    if m:
        go.setdefault(m.group(1), []).append(float(m.group(3)) / 1e6)
torch = {}
for line in open(sys.argv[2]):
    name, ms = line.split()
    torch.setdefault(name, []).append(float(ms))
print("Go: median and best of %d runs; torch: median of its per-round medians and best round" % len(next(iter(go.values()))))
print("%-38s %9s %9s %9s %9s %8s %8s" % ("benchmark", "Go med", "Go best", "torch med", "torch best", "ratio", "best/best"))
for name, ts in go.items():
    g, gb = statistics.median(ts), min(ts)
    t = torch.get(name)
    if t:
        tm, tb = statistics.median(t), min(t)
        print("%-38s %9.3f %9.3f %9.3f %9.3f %8.2f %8.2f" % (name, g, gb, tm, tb, g / tm, gb / tb))
    else:
        print("%-38s %9.3f %9.3f %9s %9s %8s %8s" % (name, g, gb, "-", "-", "-", "-"))
PYEOF
