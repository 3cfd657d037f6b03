#!/usr/bin/env bash
# Kernel benchmarks of package kernels against PyTorch 1.13 (CPU), measured
# side by side in one run: a 3x3 conv 64->64 at 56x56 and a ResNet-50
# bottleneck's three convs (fwd+bwd, batch 1), and square SGEMMs.
# Run it under the shared benchmark lock:
#   flock /tmp/bench.lock bash scripts/bench_kernels.sh
# Env: THREADS (default 2), COUNT (Go repetitions, default 7), REPS (torch
# repetitions, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
COUNT=${COUNT:-7}
REPS=${REPS:-30}
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; date: $(date -u +%F); threads: $THREADS"
GOMAXPROCS=$THREADS go test -run '^$' -bench '^(BenchmarkConv3x3_64_56|BenchmarkBottleneck|BenchmarkSgemm)$' \
  -benchtime 20x -count "$COUNT" -cpu "$THREADS" ./kernels/ >"$tmp/go.txt"
"$PY" scripts/bench_kernels_torch.py --threads "$THREADS" --reps "$REPS" >"$tmp/torch.txt"

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
    torch[name] = float(ms)
print("%-44s %10s %10s %8s" % ("benchmark (median)", "Go ms", "torch ms", "Go/torch"))
for name, ts in go.items():
    g = statistics.median(ts)
    t = torch.get(name)
    print("%-44s %10.3f %10s %8s" % (name, g, "%.3f" % t if t else "-", "%.2f" % (g / t) if t else "-"))
PYEOF
