#!/usr/bin/env bash
# Kernel benchmarks of package kernels against PyTorch 1.13 (CPU), measured
# side by side in one run: a 3x3 conv 64->64 at 56x56 and a ResNet-50
# bottleneck's three convs (fwd+bwd, batch 1), and square SGEMMs.
# On a CPU with AVX-512 it also runs both sides forced onto AVX2/FMA (the Go
# side with SKD_NOAVX512=1, PyTorch with ONEDNN_MAX_CPU_ISA=AVX2 and
# ATEN_CPU_CAPABILITY=avx2, so oneDNN JITs its AVX2 kernels), which stands in
# for an AVX2-only machine.
# Run it under the shared benchmark lock:
#   flock /tmp/bench.lock bash scripts/bench_kernels.sh
# Env: THREADS (default 2), COUNT (Go repetitions per round, default 7), REPS (torch
# repetitions per round, default 30), ISAS (default "native avx2"; "native"
# skips the forced AVX2 runs). Times are in ms; ratio = Go/torch.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
COUNT=${COUNT:-7}
REPS=${REPS:-30}
ISAS=${ISAS:-native avx2}
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! grep -qw avx512f /proc/cpuinfo; then
  ISAS=native # no AVX-512: native already is the AVX2 path
fi
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; date: $(date -u +%F); threads: $THREADS; load: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -c -o "$tmp/kernels.test" ./kernels/
for isa in $ISAS; do
  goenv=() pyenv=()
  if [ "$isa" = avx2 ]; then
    goenv=(SKD_NOAVX512=1)
    pyenv=(ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2)
  fi
  # Two alternating rounds (Go, torch, Go, torch) so that load from other
  # processes on the shared machine hits both sides alike.
  for round in 1 2; do
    env "${goenv[@]}" GOMAXPROCS="$THREADS" "$tmp/kernels.test" -test.run '^$' \
      -test.bench '^(BenchmarkConv3x3_64_56|BenchmarkBottleneck|BenchmarkSgemm)$' \
      -test.benchtime 20x -test.count "$COUNT" -test.cpu "$THREADS" >>"$tmp/go.$isa.txt"
    env "${pyenv[@]}" "$PY" scripts/bench_kernels_torch.py --threads "$THREADS" --reps "$REPS" >>"$tmp/torch.$isa.txt"
  done
done

for isa in $ISAS; do
echo
echo "== $isa =="
"$PY" - "$tmp/go.$isa.txt" "$tmp/torch.$isa.txt" <<'PYEOF'
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
done
