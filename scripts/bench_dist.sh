#!/usr/bin/env bash
# Side-by-side measurement for docs/DISTRIBUTED.md, in one run on one quiet
# machine (run it under the bench lock: flock /tmp/bench.lock bash
# scripts/bench_dist.sh [ITERS]):
#   1. throughput of the quickstart detector (R18-0.5 FPN, 4 images per
#      global batch) as 1 rank x 2 threads and as 2 ranks x 1 thread
#      (mpirun --bind-to core), from metrics.jsonl (elapsed time between
#      the first and the last log line, so graph building is left out);
#   2. time per allreduce of the R50-FPN detector's gradients (and of the
#      quickstart detector's) between 2 ranks (scripts/distbench);
#   3. the cost model checked against those figures, its projection for
#      2-64 nodes at 10/25/100 Gb/s with the COCO 1x R101->R50 SSIM wall
#      time, and the plot (scripts/distmodel -> docs/dist_model.md,
#      docs/dist_scaling.png).
# Results: $OUT (default bench_dist.json in a temp dir; printed).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-40}
TMP=$(mktemp -d)
OUT=${OUT:-$TMP/bench_dist.json}
MPI=(mpirun --allow-run-as-root --oversubscribe)
export OMPI_MCA_btl_vader_single_copy_mechanism=none
go build -tags mpi -o "$TMP/kdtrain" ./cmd/kdtrain
go build -tags mpi -o "$TMP/distbench" ./scripts/distbench
CFG=configs/quickstart/faster_r18_synth.yaml
SETS=(--set solver.max_iter=$ITERS --set solver.ims_per_batch=4 --set train.eval_period=0 --set train.checkpoint_period=0 --set train.log_period=10 --set train.eval_max_images=4)

# s/it between the first and the last log line; comm_time averaged
rate() {
  python3 - "$1" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"loss' in l]
a, b = recs[0], recs[-1]
comm = [r.get("comm_time", 0.0) for r in recs[1:]]
print((b["elapsed"] - a["elapsed"]) / (b["iter"] - a["iter"]), sum(comm) / max(len(comm), 1))
PY
}

echo "== 1 rank x 2 threads"
GOMAXPROCS=2 "$TMP/kdtrain" --config $CFG "${SETS[@]}" --work-dir "$TMP/one" >/dev/null
read ONE _ < <(rate "$TMP/one/metrics.jsonl")
echo "== 2 ranks x 1 thread"
"${MPI[@]}" -np 2 --bind-to core -x GOMAXPROCS=1 "$TMP/kdtrain" --config $CFG "${SETS[@]}" --work-dir "$TMP/two" >/dev/null
read TWO COMM < <(rate "$TMP/two/metrics.jsonl")
echo "== allreduce, quickstart detector"
SMALL=$("${MPI[@]}" -np 2 --bind-to core -x GOMAXPROCS=1 "$TMP/distbench" --config $CFG --iters 20)
echo "== allreduce, R50-FPN"
R50=$("${MPI[@]}" -np 2 --bind-to core -x GOMAXPROCS=1 "$TMP/distbench" --config configs/faster_r50_fpn_1x_coco.yaml --iters 10)
cat > "$OUT" <<JSON
{"date": "$(date -u +%FT%TZ)", "host_cores": $(nproc), "iters": $ITERS, "ims_per_batch": 4,
 "one_rank_two_threads_s_per_it": $ONE, "two_ranks_one_thread_s_per_it": $TWO, "two_ranks_comm_s_per_it": $COMM,
 "quickstart_allreduce": $SMALL,
 "r50fpn_allreduce": $R50}
JSON
cat "$OUT"
mkdir -p "${DOCS:=docs}"
go run ./scripts/distmodel --bench "$OUT" --out "$DOCS"
rm -rf "$TMP/one" "$TMP/two"
