#!/usr/bin/env bash
# The full quickstart pipeline (bash scripts/quickstart.sh --full): on a
# fresh machine with nothing downloaded,
# generate the embedded synthetic dataset, train the quickstart teacher
# (ResNet-34, half width), the no-KD student (ResNet-18, half width) and
# the SSIM-distilled student, then print the three COCO APs side by side.
# Finished runs are skipped, so running it again only prints the table
# (unless their configuration changed since).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/ ./cmd/kdtrain ./cmd/kdeval ./cmd/kddetect ./cmd/kddata

run() { # config work_dir
  # a work dir trained with another configuration (e.g. after an update of
  # the quickstart recipe) is moved aside, not reused
  if [ -f "$2/config.yaml" ] && ! bin/kdtrain --config "$1" --print-config | cmp -s - "$2/config.yaml"; then
    old="$2.old-$(date +%Y%m%d-%H%M%S)"
    echo "== $2: trained with another configuration; moved to $old"
    mv "$2" "$old"
  fi
  if [ -d "$2/checkpoints/model_final" ]; then
    echo "== $2: already trained"
  elif [ -f "$2/last_checkpoint" ]; then
    echo "== $2: resuming"; bin/kdtrain --config "$1" --resume
  else
    echo "== $2: training"; bin/kdtrain --config "$1"
  fi
}
run configs/quickstart/teacher_r34_synth.yaml work_dirs/quickstart/r34_teacher
run configs/quickstart/faster_r18_synth.yaml work_dirs/quickstart/r18_baseline
# a student distilled from an older teacher is stale too
if [ -d work_dirs/quickstart/r18_ssim ] && [ work_dirs/quickstart/r34_teacher/checkpoints/model_final -nt work_dirs/quickstart/r18_ssim/config.yaml ]; then
  old="work_dirs/quickstart/r18_ssim.old-$(date +%Y%m%d-%H%M%S)"
  echo "== work_dirs/quickstart/r18_ssim: distilled from an older teacher; moved to $old"
  mv work_dirs/quickstart/r18_ssim "$old"
fi
run configs/quickstart/student_r18_ssim_synth.yaml work_dirs/quickstart/r18_ssim

echo
printf '%-34s %7s %7s %7s %7s %7s %7s\n' model AP AP50 AP75 APs APm APl
for pair in "teacher R34-0.5:configs/quickstart/teacher_r34_synth.yaml:work_dirs/quickstart/r34_teacher" \
            "student R18-0.5, no KD:configs/quickstart/faster_r18_synth.yaml:work_dirs/quickstart/r18_baseline" \
            "student R18-0.5, SSIM KD:configs/quickstart/student_r18_ssim_synth.yaml:work_dirs/quickstart/r18_ssim"; do
  IFS=: read -r name cfg dir <<<"$pair"
  ck="$dir/checkpoints/model_final"
  [ -f "$dir/student_final.safetensors" ] && ck="$dir/student_final.safetensors"
  bin/kdeval --config "$cfg" --checkpoint "$ck" --json "$dir/final_eval.json" >/dev/null 2>&1
  printf '%-34s' "$name"
  for k in AP AP50 AP75 APs APm APl; do
    v=$(grep -o "\"$k\": *[-0-9.eE]*" "$dir/final_eval.json" | head -1 | sed 's/.*: *//')
    printf ' %7.4f' "$v"
  done
  echo
done
