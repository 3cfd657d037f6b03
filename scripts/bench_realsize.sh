#!/usr/bin/env bash
# Training on real-size images, side by side with torchvision in one run:
# the torchvision-exact R50-FPN (configs/torchvision/fasterrcnn_resnet50_fpn.yaml,
# FrozenBN, 3 trainable stages, random init), batches of 2 at 800/1333 padded
# to 32, on the synthetic set's COCO-size mode (COCO-like shapes: dozens of
# padded batch shapes). Prints per-iteration time and RSS for both sides and
# the ratios. Run it on a quiet machine:
#   bash scripts/bench_realsize.sh [ITERS=20] [THREADS=2]
# TORCH_ITERS=N runs torchvision for N iterations only (its first N batches
# are the Go run's first N): the time ratio is then taken over those same
# iterations, and the peak RSS ratio puts Go's whole run against
# torchvision's shorter one (which can only make torchvision's peak lower).
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-20}; threads=${2:-2}
set_dir=datasets/realsize
mkdir -p bin work_dirs
go build -o bin/ ./cmd/kdtrain ./cmd/kddata
bin/kddata synth --out $set_dir --sizes coco --train 60 --val 20 --seed 5 >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ); $iters iterations, $threads threads"
wd=work_dirs/bench_realsize_$$
GOMAXPROCS=$threads /usr/bin/time -f %M -o $wd.maxrss bin/kdtrain --config configs/torchvision/fasterrcnn_resnet50_fpn.yaml --work-dir $wd \
  --set data.synth.dir=$set_dir --set data.synth.train=60 --set data.synth.val=20 --set data.synth.seed=5 \
  --set data.synth.sizes=coco --set data.synth.size=640 --set data.workers=2 \
  --set data.train.ann= --set data.train.images= --set data.val.ann= --set data.val.images= \
  --set solver.ims_per_batch=2 --set solver.base_lr=0.0025 --set solver.max_iter=$iters --set solver.warmup_iters=100 \
  --set solver.steps=[100000] --set train.log_period=1 --set train.checkpoint_period=1000000 \
  --set train.eval_period=0 --set train.eval_max_images=4 >$wd.log 2>&1 || { tail -20 $wd.log; exit 1; }
titers=${TORCH_ITERS:-$iters}
{ /usr/bin/python3 - "$wd/metrics.jsonl" "$(cat $wd.maxrss)" "$titers" <<'PY'
import json, sys
peak = int(sys.argv[2]) / 1024
tn = int(sys.argv[3])
rows = [json.loads(l) for l in open(sys.argv[1]) if '"time"' in l and '"lr"' in l]
n = len(rows); skip = min(2, n - 1); t = [r["time"] for r in rows]; m = [r["memory"] for r in rows]
third = max(1, n // 3)
print(f"go summary: {n} iterations, mean {sum(t[skip:])/(n-skip):.2f} s/it over iterations {skip+1}-{n}, peak RSS {peak:.0f} MB, "
      f"RSS first-third max {max(m[:third]):.0f} MB, last-third max {max(m[-third:]):.0f} MB")
if n > 150:
    print(f"go RSS: max {max(m[:n-150]):.0f} MB over iterations 1-{n-150}, max {max(m[n-150:]):.0f} MB over the last 150")
if tn < n:
    tn = max(tn, skip + 1)
    print(f"go over the first {tn}: mean {sum(t[skip:tn])/(tn-skip):.2f} s/it over iterations {skip+1}-{tn}, peak RSS {peak:.0f} MB (whole run)")
PY
} | tee $wd.log.sum
[ "${GO_ONLY:-}" = 1 ] && { rm -rf $wd $wd.maxrss; exit 0; }
/usr/bin/python3 scripts/bench_realsize_torch.py --ann $set_dir/annotations/instances_train.json --images $set_dir/train \
  --iters $titers --threads $threads | tee $wd.torch.log | tail -1
/usr/bin/python3 - "$(tail -1 $wd.log.sum)" "$(tail -1 $wd.torch.log)" <<'PY'
import re, sys
g, t = sys.argv[1], sys.argv[2]
f = lambda s, k: float(re.search(k + r" ([0-9.]+)", s).group(1))
print(f"ratio go/torch: time {f(g, 'mean')/f(t, 'mean'):.2f}x, peak RSS {f(g, 'peak RSS')/f(t, 'peak RSS'):.2f}x")
PY
rm -rf $wd $wd.maxrss
