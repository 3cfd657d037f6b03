#!/usr/bin/env bash
# Side-by-side measurement for docs/DISTRIBUTED.md, in one run on one quiet
# machine (run it under the bench lock: flock /tmp/bench.lock bash
# scripts/bench_dist.sh [ITERS]):
#   1. time per allreduce of the R50-FPN detector's gradients (and of the
#      quickstart detector's, in the buckets of step 2) between 2 ranks
#      (scripts/distbench);
#   2. throughput of the quickstart detector (R18-0.5 FPN, 4 images per
#      global batch) as 1 rank x 2 threads and as 2 ranks x 1 thread
#      (mpirun --bind-to core), the latter twice: with the gradient
#      allreduce overlapped with the backward pass (the default) and with
#      every bucket reduced after it (SKD_DDP_OVERLAP=0), and a third time
#      overlapped with the communication thread at nice 19
#      (SKD_DDP_COMM_NICE: MPI polls while it waits for the other rank,
#      and here each rank's communication and compute threads share one
#      core). s/it from
#      metrics.jsonl (elapsed time between the first and the last log
#      line, so graph building is left out); comm_time / comm_exposed /
#      comm_wait per iteration from its last line. The quickstart
#      detector's 15.6 MB of gradients would fit one 25 MB bucket, which
#      can only start when the backward pass ends; both 2-rank runs cut
#      them into as many buckets as the R50-FPN's 166 MB make at 25 MB (5;
#      SKD_DDP_BUCKET_BYTES), so the overlap is close to the one R50-FPN
#      would get (its last bucket, never hidden, holds 12.6% of the bytes);
#   3. the cost model checked against those figures, its projection for
#      2-64 nodes at 10/25/100 Gb/s with the COCO 1x R101->R50 SSIM wall
#      time, and the plot (scripts/distmodel -> docs/dist_model.md,
#      docs/dist_scaling.png).
# The hidden fraction is reported two ways: from the overlapped run's own
# log (1 - comm_exposed / comm_time: the share of the allreduce time spent
# while the backward pass still ran; comm_time includes waiting for the
# other rank to reach the bucket) and against the serial run (1 -
# comm_exposed(overlapped) / comm_time(serial): the share of the serial
# allreduce time taken off the critical path).
# Results: $OUT (default bench_dist.json in a temp dir; printed).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-40}
TMP=$(mktemp -d)
OUT=${OUT:-$TMP/bench_dist.json}
MPI=(mpirun --allow-run-as-root --oversubscribe)
# ranks bound to one core each: the communication thread shares its rank's
# core with the compute thread, so let MPI's polling yield when it waits
TRAINMPI=(-x OMPI_MCA_mpi_yield_when_idle=1)
export OMPI_MCA_btl_vader_single_copy_mechanism=none
go build -tags mpi -o "$TMP/kdtrain" ./cmd/kdtrain
go build -tags mpi -o "$TMP/distbench" ./scripts/distbench
CFG=configs/quickstart/faster_r18_synth.yaml
SETS=(--set solver.max_iter=$ITERS --set solver.ims_per_batch=4 --set train.eval_period=0 --set train.checkpoint_period=0 --set train.log_period=10 --set train.eval_max_images=4)

# s/it between the first and the last log line; the communication figures
# of the last line (per-iteration averages over the run)
rate() {
  python3 - "$1" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"loss' in l]
a, b = recs[0], recs[-1]
print((b["elapsed"] - a["elapsed"]) / (b["iter"] - a["iter"]),
      b.get("comm_time", 0.0), b.get("comm_exposed", 0.0), b.get("comm_wait", 0.0))
PY
}
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

echo "== allreduce, R50-FPN"
R50=$("${MPI[@]}" -np 2 --bind-to core -x GOMAXPROCS=1 "$TMP/distbench" --config configs/faster_r50_fpn_1x_coco.yaml --iters 10)
NB=$(field buckets <<<"$R50")
# the quickstart detector's gradients in as many buckets (one process: sizes only)
SMALL_BYTES=$("$TMP/distbench" --config $CFG --iters 1 | field grad_bytes)
BUCKET=$(python3 -c "import math; print(math.ceil($SMALL_BYTES / $NB))")
echo "== allreduce, quickstart detector ($BUCKET-byte buckets)"
SMALL=$("${MPI[@]}" -np 2 --bind-to core -x GOMAXPROCS=1 "$TMP/distbench" --config $CFG --iters 20 --bucket-bytes $BUCKET)
NB=$(field buckets <<<"$SMALL")
echo "== 1 rank x 2 threads"
GOMAXPROCS=2 "$TMP/kdtrain" --config $CFG "${SETS[@]}" --work-dir "$TMP/one" >/dev/null
read ONE _ < <(rate "$TMP/one/metrics.jsonl")
echo "== 2 ranks x 1 thread, allreduce after the backward pass ($NB buckets of $BUCKET bytes)"
"${MPI[@]}" -np 2 --bind-to core "${TRAINMPI[@]}" -x GOMAXPROCS=1 -x SKD_DDP_OVERLAP=0 -x SKD_DDP_BUCKET_BYTES=$BUCKET \
  "$TMP/kdtrain" --config $CFG "${SETS[@]}" --work-dir "$TMP/serial" >/dev/null
read SER SCOMM _ SWAIT < <(rate "$TMP/serial/metrics.jsonl")
echo "== 2 ranks x 1 thread, allreduce overlapped with the backward pass"
"${MPI[@]}" -np 2 --bind-to core "${TRAINMPI[@]}" -x GOMAXPROCS=1 -x SKD_DDP_BUCKET_BYTES=$BUCKET \
  "$TMP/kdtrain" --config $CFG "${SETS[@]}" --work-dir "$TMP/two" >/dev/null
read TWO COMM EXPO WAIT < <(rate "$TMP/two/metrics.jsonl")
echo "== 2 ranks x 1 thread, overlapped, communication thread at nice 19"
"${MPI[@]}" -np 2 --bind-to core "${TRAINMPI[@]}" -x GOMAXPROCS=1 -x SKD_DDP_BUCKET_BYTES=$BUCKET -x SKD_DDP_COMM_NICE=19 \
  "$TMP/kdtrain" --config $CFG "${SETS[@]}" --work-dir "$TMP/nice" >/dev/null
read NICE NCOMM NEXPO NWAIT < <(rate "$TMP/nice/metrics.jsonl")
HIDDEN=$(python3 -c "print(1 - $EXPO / $COMM if $COMM > 0 else 0)")
HIDDEN_SER=$(python3 -c "print(1 - $EXPO / $SCOMM if $SCOMM > 0 else 0)")
NHIDDEN_SER=$(python3 -c "print(1 - $NEXPO / $SCOMM if $SCOMM > 0 else 0)")
cat > "$OUT" <<JSON
{"date": "$(date -u +%FT%TZ)", "host_cores": $(nproc), "iters": $ITERS, "ims_per_batch": 4,
 "load_average": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "one_rank_two_threads_s_per_it": $ONE,
 "buckets": $NB, "bucket_bytes": $BUCKET,
 "two_ranks_serial_s_per_it": $SER, "two_ranks_serial_comm_s_per_it": $SCOMM, "two_ranks_serial_comm_wait_s_per_it": $SWAIT,
 "two_ranks_one_thread_s_per_it": $TWO, "two_ranks_comm_s_per_it": $COMM,
 "two_ranks_comm_exposed_s_per_it": $EXPO, "two_ranks_comm_wait_s_per_it": $WAIT,
 "hidden_fraction": $HIDDEN, "hidden_fraction_vs_serial": $HIDDEN_SER,
 "two_ranks_nice_s_per_it": $NICE, "two_ranks_nice_comm_s_per_it": $NCOMM, "two_ranks_nice_comm_exposed_s_per_it": $NEXPO,
 "two_ranks_nice_comm_wait_s_per_it": $NWAIT, "hidden_fraction_nice_vs_serial": $NHIDDEN_SER,
 "quickstart_allreduce": $SMALL,
 "r50fpn_allreduce": $R50}
JSON
cat "$OUT"
mkdir -p "${DOCS:=docs}"
go run ./scripts/distmodel --bench "$OUT" --out "$DOCS"
rm -rf "$TMP/one" "$TMP/two" "$TMP/serial" "$TMP/nice"
