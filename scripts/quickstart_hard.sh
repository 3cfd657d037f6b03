#!/usr/bin/env bash
# The 20-minute quickstart being prepared for the README's main job (issue
# 11; it replaces scripts/quickstart.sh once the teacher it starts from is
# trained and shipped in assets/teachers, and its wall time measured): on
# the hard synthetic set (generated locally), take the
# shipped teacher checkpoint (ResNet-34 x0.5, trained by kdtrain with
# configs/kd_study/teacher.yaml; verified against its SHA-256), train the
# no-KD student and the SSIM-distilled student (ResNet-18 x0.25) for a few
# seeds, and print teacher, no-KD and SSIM side by side with the spread
# over seeds. Finished runs are skipped when it is run again (unless their
# configuration changed since).
#
#   bash scripts/quickstart_hard.sh
#
# Without the shipped teacher it trains the teacher first
# (configs/kd_study/teacher.yaml: hours on 2 cores).
#
# Environment: QS_SEEDS (default "1 2"), QS_ITERS (student iterations,
# default that of configs/quickstart/student_hard.yaml), QS_WORK (work
# dirs, default work_dirs/quickstart_hard), QS_SMOKE=1 (tiny models on a
# tiny set, a few iterations: checks the script itself in about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
  echo "usage: bash scripts/quickstart_hard.sh" >&2
  exit 2
fi
t0=$(date +%s)
SEEDS=${QS_SEEDS:-"1 2"}
WORK=${QS_WORK:-work_dirs/quickstart_hard}
TEACHER_CFG=configs/kd_study/teacher.yaml
NONE_CFG=configs/quickstart/student_hard.yaml
SSIM_CFG=configs/quickstart/student_hard_ssim.yaml
SHIPPED=${QS_TEACHER:-assets/teachers/r34x05_hard.safetensors}
TEACHER_WORK=work_dirs/kd_study/teacher

mkdir -p bin
go build -o bin/ ./cmd/kdtrain ./cmd/kdeval ./cmd/kddata

COMMON=()
SSIM_SETS=()
if [ "${QS_SMOKE:-}" = 1 ]; then
  # tiny versions of the three configs in a scratch dir
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for c in "$TEACHER_CFG" "$NONE_CFG" "$SSIM_CFG"; do
    cat >"$tmp/$(basename "$c")" <<EOF
_base_: $PWD/$c
model:
  backbone: {width_mult: 0.125}
  fpn_channels: 16
  roi_heads: {representation_size: 32, batch_size_per_image: 32}
  rpn: {batch_size_per_image: 64, pre_nms_top_n_train: 200, post_nms_top_n_train: 100, pre_nms_top_n_test: 100, post_nms_top_n_test: 50}
input: {min_size: [96], min_size_test: 96, max_size: 96}
data:
  synth: {dir: $tmp/set, train: 8, val: 4, holdout: 4, size: 96}
  workers: 1
solver: {ims_per_batch: 2, max_iter: 4, steps: [2, 3], warmup_iters: 1}
train: {log_period: 1, checkpoint_period: 2}
EOF
  done
  TEACHER_CFG=$tmp/teacher.yaml NONE_CFG=$tmp/student_hard.yaml SSIM_CFG=$tmp/student_hard_ssim.yaml
  SSIM_SETS=(--set "teacher.config=$TEACHER_CFG")
  TEACHER_WORK=$tmp/teacher WORK=$tmp/work
  SHIPPED=${QS_TEACHER:-$tmp/shipped/teacher.safetensors}
fi
if [ -n "${QS_ITERS:-}" ]; then
  COMMON+=(--set "solver.max_iter=$QS_ITERS" --set "solver.steps=[$((2 * QS_ITERS / 3)),$((8 * QS_ITERS / 9))]")
fi

run() { # config work_dir [--set k=v ...]
  local cfg=$1 dir=$2
  shift 2
  # a work dir trained with another configuration is moved aside, not reused
  if [ -f "$dir/config.yaml" ] && ! bin/kdtrain --config "$cfg" --work-dir "$dir" "$@" --print-config | cmp -s - "$dir/config.yaml"; then
    local old
    old="$dir.old-$(date +%Y%m%d-%H%M%S)"
    echo "== $dir: trained with another configuration; moved to $old"
    mv "$dir" "$old"
  fi
  if [ -d "$dir/checkpoints/model_final" ]; then
    echo "== $dir: already trained"
  elif [ -f "$dir/last_checkpoint" ]; then
    echo "== $dir: resuming"
    bin/kdtrain --config "$cfg" --work-dir "$dir" "$@" --resume >"$dir.log" 2>&1 || { tail -20 "$dir.log"; exit 1; }
  else
    echo "== $dir: training ($(date +%H:%M:%S))"
    mkdir -p "$(dirname "$dir")"
    bin/kdtrain --config "$cfg" --work-dir "$dir" "$@" >"$dir.log" 2>&1 || { tail -20 "$dir.log"; exit 1; }
  fi
}

# The teacher: the shipped checkpoint when it is there and intact, else
# trained here (as the study trains it) and, in smoke mode, shipped.
verified() { [ -f "$1" ] && [ -f "$1.sha256" ] && (cd "$(dirname "$1")" && sha256sum --status -c "$(basename "$1").sha256"); }
if verified "$SHIPPED"; then
  echo "== teacher: $SHIPPED (SHA-256 verified)"
  TEACHER=$SHIPPED
else
  if [ -f "$SHIPPED" ]; then
    echo "== teacher: $SHIPPED does not match $SHIPPED.sha256 (damaged, or a Git LFS pointer?); training the teacher instead"
  else
    echo "== teacher: no shipped checkpoint at $SHIPPED; training it with $TEACHER_CFG (about 90 minutes on 2 cores; the 20-minute figure assumes the shipped file)"
  fi
  run "$TEACHER_CFG" "$TEACHER_WORK"
  TEACHER=$TEACHER_WORK
  if [ "${QS_SMOKE:-}" = 1 ]; then
    go run ./scripts/ship_teacher -in "$TEACHER_WORK" -out "$SHIPPED"
    verified "$SHIPPED" || { echo "quickstart: the shipped teacher does not verify" >&2; exit 1; }
    TEACHER=$SHIPPED
  fi
fi

first=$(echo $SEEDS | cut -d' ' -f1)
for s in $SEEDS; do
  run "$NONE_CFG" "$WORK/none_s$s" --set "train.seed=$s" ${COMMON[@]+"${COMMON[@]}"}
  # the first SSIM run evaluates the teacher (the table's teacher row); the others skip it
  skip=false
  [ "$s" != "$first" ] && skip=true
  run "$SSIM_CFG" "$WORK/ssim_s$s" --set "train.seed=$s" --set "teacher.weights=$TEACHER" --set "distill.skip_teacher_eval=$skip" \
    ${SSIM_SETS[@]+"${SSIM_SETS[@]}"} ${COMMON[@]+"${COMMON[@]}"}
done
if [ "${QS_SMOKE:-}" = 1 ]; then
  for s in $SEEDS; do
    if [ "$s" != "$first" ] && grep -q teacher_AP "$WORK/ssim_s$s/metrics.jsonl"; then
      echo "quickstart: $WORK/ssim_s$s evaluated the teacher again" >&2
      exit 1
    fi
  done
fi

# The table: the last evaluation of each run's metrics.jsonl (the final
# model on the val split); the teacher's row is its val AP as the first
# SSIM run loaded it (logged at iteration 0).
keys="AP AP50 AP75 APs APm APl"
lastEval() { grep '"AP":' "$1/metrics.jsonl" | grep -v '"teacher_AP"' | tail -1; }
field() { grep -o "\"$1\":[-0-9.eE+]*" | head -1 | cut -d: -f2; }
echo
printf '%-30s %-15s %-15s %-15s %-15s %-15s %-15s  %s\n' model $keys "AP per seed"
trow=$(grep '"teacher_AP":' "$WORK/ssim_s$first/metrics.jsonl" | tail -1)
printf '%-30s' "teacher R34 x0.5"
for k in $keys; do printf ' %-15.4f' "$(echo "$trow" | field "teacher_$k")"; done
echo
for m in none ssim; do
  name="student R18 x0.25, no KD"
  [ $m = ssim ] && name="student R18 x0.25, SSIM KD"
  printf '%-30s' "$name"
  for k in $keys; do
    for s in $SEEDS; do lastEval "$WORK/${m}_s$s" | field "$k"; done |
      awk '{x[NR]=$1; s+=$1} END {m=s/NR; v=0; for(i=1;i<=NR;i++) v+=(x[i]-m)^2; sd=(NR>1)?sqrt(v/(NR-1)):0; printf " %-15s", sprintf("%.4f±%.4f", m, sd)}'
  done
  per=""
  for s in $SEEDS; do per="$per $(printf '%.4f' "$(lastEval "$WORK/${m}_s$s" | field AP)")"; done
  echo "  $per"
done
n=$(echo $SEEDS | wc -w)
echo
echo "students: mean ± sample std over $n seeds ($SEEDS); COCO metrics on the hard synthetic val split; wall time $(( ($(date +%s) - t0) / 60 )) min $(( ($(date +%s) - t0) % 60 )) s"
