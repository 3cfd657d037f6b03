// Command distbench times the gradient allreduce of a detector's
// trainable parameters between MPI ranks, as the trainer does it (buckets
// of 25 MB, train.GradReducer), and prints one JSON object from rank 0:
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
	flag.Parse()
	if err := run(*cfgPath, *iters); err != nil {
		fmt.Fprintln(os.Stderr, "distbench:", err)
		os.Exit(1)
	}
}

func run(cfgPath string, iters int) error {
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
	red := train.GradReducer{W: w}
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
	out := map[string]any{
		"config": cfgPath, "ranks": w.Size(), "params": n, "grad_bytes": bytes,
		"tensors": len(grads), "bucket_bytes": train.BucketBytes,
		"allreduce_s_median": med, "allreduce_s_min": times[0], "allreduce_s_max": times[len(times)-1],
		// ring allreduce moves 2(N-1)/N of the data through each link
		"bus_bandwidth_GBps": 2 * float64(w.Size()-1) / float64(w.Size()) * bytes / med / 1e9,
	}
	raw, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(raw))
	return nil
}
