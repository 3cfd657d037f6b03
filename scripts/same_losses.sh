#!/usr/bin/env bash
# Behaviour check for refactors: builds kdtrain at two git revisions and
# runs, with each, a 30-iteration quickstart training (baseline), a
# 30-iteration SSIM distillation from the baseline's weights, and a resume
# from the baseline's iteration-20 checkpoint, on a small synthetic set;
# then compares every metrics.jsonl record (losses, lr, grad norm, APs;
# not timings or memory) between the two revisions. Exit 0 when all are
# identical.
#   bash scripts/same_losses.sh [REV_BEFORE [REV_AFTER]]   (default: main HEAD)
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:-main}; B=${2:-HEAD}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for rev in "$A" "$B"; do
  mkdir -p "$tmp/src-$rev"
  git archive "$rev" | tar -x -C "$tmp/src-$rev"
  (cd "$tmp/src-$rev" && go build -o "$tmp/bin-$rev/" ./cmd/kdtrain ./cmd/kddata)
done
"$tmp/bin-$A/kddata" synth --out "$tmp/synth" --train 40 --val 8 --seed 1 --size 320 >/dev/null
SETS=(--set data.synth.dir="$tmp/synth" --set data.synth.train=40 --set data.synth.val=8 --set solver.ims_per_batch=2
  --set solver.max_iter=30 --set solver.warmup_iters=10 --set "solver.steps=[20,25]" --set train.log_period=1
  --set train.checkpoint_period=10 --set train.eval_period=20 --set model.rpn.post_nms_top_n_train=200 --set data.workers=2)
for rev in "$A" "$B"; do
  o="$tmp/run-$rev"; k="$tmp/bin-$rev/kdtrain"
  "$k" --config configs/quickstart/faster_r18_synth.yaml "${SETS[@]}" --work-dir "$o/base" >"$o.base.log" 2>&1
  "$k" --config configs/quickstart/student_r18_ssim_synth.yaml "${SETS[@]}" --set teacher.weights="$o/base/checkpoints/model_final" \
    --set teacher.config=configs/quickstart/faster_r18_synth.yaml --work-dir "$o/kd" >"$o.kd.log" 2>&1
  "$k" --config configs/quickstart/faster_r18_synth.yaml "${SETS[@]}" --resume="$o/base/checkpoints/iter_0000020" --work-dir "$o/res" >"$o.res.log" 2>&1
done
rc=0
for r in base kd res; do
  strip() { /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(json.dumps({k: v for k, v in d.items() if "time" not in k and k not in ("elapsed", "memory")}, sort_keys=True))' "$1"; }
  if diff <(strip "$tmp/run-$A/$r/metrics.jsonl") <(strip "$tmp/run-$B/$r/metrics.jsonl") >/dev/null; then
    echo "$r: identical ($(wc -l <"$tmp/run-$A/$r/metrics.jsonl") records)"
  else
    echo "$r: DIFFERENT"; rc=1
  fi
done
exit $rc
