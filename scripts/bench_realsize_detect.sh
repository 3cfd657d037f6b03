#!/usr/bin/env bash
# kddetect on real-size images beside torchvision, one run: 100 COCO-size
# synthetic images (dozens of shapes), torchvision's fasterrcnn_resnet50_fpn
# with deterministic weights (the same .pth on both sides), batch 1 at
# 800/1333. Time per image and RSS (sampled every second for kddetect:
# first-third against last-third maximum shows whether it stays flat).
# Run it on a quiet machine:
#   bash scripts/bench_realsize_detect.sh [IMAGES=100] [THREADS=2]
# TORCH_IMAGES=K runs torchvision on the first K images only (about 10 s
# each on 2 cores); kddetect always runs all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}; threads=${2:-2}
set_dir=datasets/realsize_detect_$n
mkdir -p bin
go build -o bin/ ./cmd/kddetect ./cmd/kddata
bin/kddata synth --out $set_dir --sizes coco --train 0 --val "$n" --seed 9 >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ); $n images, $threads threads"
tmp=$(mktemp -d)
/usr/bin/python3 scripts/bench_realsize_detect_torch.py --images $set_dir/val --save $tmp/w.pth --threads $threads --limit "${TORCH_IMAGES:-0}" | tee $tmp/torch.log
start=$(date +%s.%N)
GOMAXPROCS=$threads /usr/bin/time -f %M -o $tmp/maxrss bin/kddetect --config configs/torchvision/fasterrcnn_resnet50_fpn.yaml \
  --weights $tmp/w.pth --images $set_dir/val --out $tmp/res.json --quiet > $tmp/go.log 2>&1 &
pid=$!
sleep 0.2
kpid=$(pgrep -P $pid kddetect || echo $pid)
: > $tmp/rss
while kill -0 $pid 2>/dev/null; do
  awk '/VmRSS/ {print $2/1024}' /proc/$kpid/status 2>/dev/null >> $tmp/rss || true
  sleep 1
done
wait $pid
end=$(date +%s.%N)
/usr/bin/python3 - $tmp/rss "$(cat $tmp/maxrss)" "$start" "$end" "$n" "$(tail -1 $tmp/torch.log)" "$(grep -m1 'images processed' $tmp/go.log)" <<'PY'
import re, sys
r = [float(x) for x in open(sys.argv[1]) if x.strip()]
peak, t, n, torch, golog = int(sys.argv[2]) / 1024, float(sys.argv[4]) - float(sys.argv[3]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
third = max(1, len(r) // 3)
print(f"go summary: {golog.strip()}; {t/n:.3f} s/image (whole run incl. start-up and weight loading), peak RSS {peak:.0f} MB, "
      f"RSS first-third max {max(r[:third]):.0f} MB, last-third max {max(r[-third:]):.0f} MB")
f = lambda s, k: float(re.search(k + r" ([0-9.]+)", s).group(1))
print(f"ratio go/torch: time per image {t/n/f(torch, 'mean'):.2f}x, peak RSS {peak/f(torch, 'peak RSS'):.2f}x")
PY
rm -rf $tmp
