// Command distbench times the gradient allreduce of a detector's
// trainable parameters between MPI ranks, as the trainer does it (buckets
// of 25 MB or --bucket-bytes, train.GradReducer), and prints one JSON
// object from rank 0 (with the buckets' sizes: the last one, holding the
// first parameters, starts only when the backward pass ends):
//
//	go build -tags mpi -o bin/distbench ./scripts/distbench
//	mpirun -np 2 bin/distbench --config configs/faster_r50_fpn_1x_coco.yaml --iters 20
//
// It is part of scripts/bench_dist.sh (docs/DISTRIBUTED.md); the timing is
// only meaningful on a quiet machine.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/dist"
	"github.com/skd-go/skd/model"
	"github.com/skd-go/skd/train"
)

func main() {
	cfgPath := flag.String("config", "configs/faster_r50_fpn_1x_coco.yaml", "detector configuration")
	iters := flag.Int("iters", 20, "timed allreduces (after 2 warm-up ones)")
	bucket := flag.Int("bucket-bytes", 0, "gradient bucket size (0: train.BucketBytes, 25 MB; the trainer's SKD_DDP_BUCKET_BYTES)")
	flag.Parse()
	if err := run(*cfgPath, *iters, *bucket); err != nil {
		fmt.Fprintln(os.Stderr, "distbench:", err)
		os.Exit(1)
	}
}

func run(cfgPath string, iters, bucketBytes int) error {
	w, err := dist.Init()
	if err != nil {
		return err
	}
	defer w.Finalize()
	cfg, _, err := config.LoadFile(cfgPath, nil)
	if err != nil {
		return err
	}
	det, err := model.New(cfg.Model)
	if err != nil {
		return err
	}
	var grads [][]float32
	n := 0
	for _, p := range det.Reg.Trainable() {
		g := make([]float32, len(p.Data()))
		for i := range g {
			g[i] = float32(w.Rank()+1) * 1e-3
		}
		grads = append(grads, g)
		n += len(g)
	}
	if bucketBytes <= 0 {
		bucketBytes = train.BucketBytes
	}
	red := train.GradReducer{W: w, BucketBytes: bucketBytes}
	var times []float64
	for it := 0; it < iters+2; it++ {
		if err := w.Barrier(); err != nil {
			return err
		}
		t0 := time.Now()
		if err := red.Average(grads); err != nil {
			return err
		}
		if it >= 2 {
			times = append(times, time.Since(t0).Seconds())
		}
	}
	sort.Float64s(times)
	if !w.IsRoot() {
		return nil
	}
	med := times[len(times)/2]
	bytes := 4 * float64(n)
	lens := make([]int, len(grads))
	for i, g := range grads {
		lens[i] = len(g)
	}
	// the buckets in reduction order; the last one starts only when the
	// backward pass ends (never hidden)
	var sizes []float64
	for _, b := range red.Buckets(lens) {
		sz := 0
		for _, l := range lens[b[0]:b[1]] {
			sz += 4 * l
		}
		sizes = append(sizes, float64(sz))
	}
	out := map[string]any{
		"config": cfgPath, "ranks": w.Size(), "params": n, "grad_bytes": bytes,
		"tensors": len(grads), "bucket_bytes": bucketBytes,
		"buckets": len(sizes), "bucket_sizes": sizes, "last_bucket_share": sizes[len(sizes)-1] / bytes,
		"allreduce_s_median": med, "allreduce_s_min": times[0], "allreduce_s_max": times[len(times)-1],
		// ring allreduce moves 2(N-1)/N of the data through each link
		"bus_bandwidth_GBps": 2 * float64(w.Size()-1) / float64(w.Size()) * bytes / med / 1e9,
	}
	raw, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(raw))
	return nil
}
