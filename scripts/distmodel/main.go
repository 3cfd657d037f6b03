// Command distmodel is the cost model of data-parallel training
// (docs/DISTRIBUTED.md): it projects the time per iteration, the scaling
// efficiency and the wall time of a COCO 1x R101 -> R50 SSIM distillation
// run on 2-64 nodes at 10, 25 and 100 Gb/s, writes a Markdown table and a
// plot, and, given the figures scripts/bench_dist.sh measured on one
// machine, checks the model against them.
//
//	go run ./scripts/distmodel --bench bench_dist.json --out docs/
//
// Model (per iteration, every node identical):
//
//	compute  = b * (train_s + teacher_s) / (cores * thread_eff)
//	allreduce = buckets * 2(N-1) * latency + 2(N-1)/N * grad_bytes / (link * link_eff)
//	exposed  = max(last_share * allreduce, allreduce - overlap * backward)
//	iteration = compute + exposed,  efficiency = compute / iteration
//
// with b = max(1, 16/N) images per node (COCO 1x: a global batch of 16;
// beyond 16 nodes one image per node and detectron2's linear scaling rule,
// 1.44 M images / global batch iterations). The trainer starts each
// bucket's allreduce as soon as the backward pass has computed it, so
// the allreduce hides behind the backward pass (overlap: the share of the
// backward pass it can use, --overlap) except the last bucket's (its share
// of the bytes: last_share), which starts when the backward pass ends. The "after the backward pass" rows
// (SKD_DDP_OVERLAP=0) are the reference: nothing hidden.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/skd-go/skd/plots"
)

type params struct {
	GradBytes float64 // student gradient bytes (R50-FPN)
	TrainS    float64 // core-seconds per image: student forward+backward at COCO size
	TeacherS  float64 // core-seconds per image: teacher forward at COCO size
	Backward  float64 // share of TrainS spent in the backward pass
	Cores     int
	ThreadEff float64
	LatencyS  float64
	LinkEff   float64
	Buckets   float64 // gradient buckets (R50-FPN at 25 MB: 5)
	LastShare float64 // the last bucket's share of the gradient bytes
	Images    float64 // images of the schedule (COCO 1x: 90k x 16)
	Overlap   float64 // share of the backward pass the allreduce can hide behind
}

// bench is what scripts/bench_dist.sh writes.
type bench struct {
	OneRankTwoThreadsS float64 `json:"one_rank_two_threads_s_per_it"`
	TwoRanksOneThreadS float64 `json:"two_ranks_one_thread_s_per_it"`
	TwoRanksCommS      float64 `json:"two_ranks_comm_s_per_it"`
	CommExposedS       float64 `json:"two_ranks_comm_exposed_s_per_it"`
	CommWaitS          float64 `json:"two_ranks_comm_wait_s_per_it"`
	SerialS            float64 `json:"two_ranks_serial_s_per_it"`
	SerialCommS        float64 `json:"two_ranks_serial_comm_s_per_it"`
	SerialWaitS        float64 `json:"two_ranks_serial_comm_wait_s_per_it"`
	Hidden             float64 `json:"hidden_fraction"`
	HiddenVsSerial     float64 `json:"hidden_fraction_vs_serial"`
	Buckets            float64 `json:"buckets"`
	NiceS              float64 `json:"two_ranks_nice_s_per_it"`
	NiceExposedS       float64 `json:"two_ranks_nice_comm_exposed_s_per_it"`
	NiceHidden         float64 `json:"hidden_fraction_nice_vs_serial"`
	ImsPerBatch        int     `json:"ims_per_batch"`
	SmallAllreduce     struct {
		Seconds   float64 `json:"allreduce_s_median"`
		GradBytes float64 `json:"grad_bytes"`
		LastShare float64 `json:"last_bucket_share"`
	} `json:"quickstart_allreduce"`
	R50Allreduce struct {
		Seconds   float64 `json:"allreduce_s_median"`
		GradBytes float64 `json:"grad_bytes"`
		Buckets   float64 `json:"buckets"`
		LastShare float64 `json:"last_bucket_share"`
	} `json:"r50fpn_allreduce"`
}

type point struct {
	nodes, perNode, global  int
	compute, comm, exposed  float64
	iter, eff, wallH, iters float64
}

func project(p params, nodes int, gbps, overlap float64) point {
	b := max(1, 16/nodes)
	n := float64(nodes)
	compute := float64(b) * (p.TrainS + p.TeacherS) / (float64(p.Cores) * p.ThreadEff)
	link := gbps * 1e9 / 8 * p.LinkEff
	comm := p.Buckets*2*(n-1)*p.LatencyS + 2*(n-1)/n*p.GradBytes/link
	backward := float64(b) * p.TrainS * p.Backward / (float64(p.Cores) * p.ThreadEff)
	exposed := comm
	if overlap > 0 {
		exposed = math.Max(p.LastShare*comm, comm-overlap*backward)
	}
	iter := compute + exposed
	global := nodes * b
	iters := p.Images / float64(global)
	return point{nodes: nodes, perNode: b, global: global, compute: compute, comm: comm, exposed: exposed,
		iter: iter, eff: compute / iter, iters: iters, wallH: iters * iter / 3600}
}

func main() {
	var p params
	flag.Float64Var(&p.GradBytes, "grad-bytes", 165926544, "student gradient bytes (R50-FPN trainable parameters; distbench measures it)")
	flag.Float64Var(&p.TrainS, "train-core-s", 26.9, "core-seconds per image, student training step at COCO size (docs/PERFORMANCE.md: 6.6 s per 2 images on 2 cores at 512x512, x4.07 pixels)")
	flag.Float64Var(&p.TeacherS, "teacher-core-s", 17.5, "core-seconds per image, R101 teacher forward at COCO size (R50 inference 2.9 core-s at 512x512, x1.5 for R101, x4.07 pixels)")
	flag.Float64Var(&p.Backward, "backward-share", 0.6, "share of the training step spent in the backward pass")
	flag.IntVar(&p.Cores, "cores", 32, "cores per node")
	flag.Float64Var(&p.ThreadEff, "thread-eff", 0.8, "parallel efficiency of the cores within a node")
	flag.Float64Var(&p.LatencyS, "latency", 50e-6, "per-message latency (s) of the network")
	flag.Float64Var(&p.LinkEff, "link-eff", 0.85, "achievable share of the link bandwidth")
	flag.Float64Var(&p.Buckets, "buckets", 5, "gradient buckets (R50-FPN's 166 MB at 25 MB; distbench reports it)")
	flag.Float64Var(&p.LastShare, "last-bucket-share", 0.126, "the last bucket's share of the gradient bytes (R50-FPN: 20.8 of 165.9 MB; distbench reports it)")
	flag.Float64Var(&p.Images, "images", 90000*16, "images in the schedule")
	flag.Float64Var(&p.Overlap, "overlap", 1, "share of the backward pass the gradient allreduce can hide behind (0: none)")
	benchPath := flag.String("bench", "", "figures measured by scripts/bench_dist.sh (JSON) to check the model against")
	out := flag.String("out", "", "directory for dist_model.md and dist_scaling.png (empty: stdout only)")
	flag.Parse()

	var md strings.Builder
	if *benchPath != "" {
		if err := check(&md, *benchPath, &p); err != nil {
			fmt.Fprintln(os.Stderr, "distmodel:", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(&md, "Assumptions: %.1f MB of gradients in %.0f buckets, student %.1f core-s/image, teacher forward %.1f core-s/image, %d cores per node at %.0f%% efficiency, latency %.0f us, %.0f%% of the link usable.\n\n",
		p.GradBytes/1e6, p.Buckets, p.TrainS, p.TeacherS, p.Cores, 100*p.ThreadEff, p.LatencyS*1e6, 100*p.LinkEff)
	series := map[string][]plots.Point{}
	for _, overlap := range []float64{p.Overlap, 0} {
		if overlap > 0 {
			fmt.Fprintf(&md, "Overlapped (each bucket's allreduce starts when the backward pass has computed it; hidden behind up to %.0f%% of the backward pass, the last bucket never):\n\n", 100*overlap)
		} else {
			fmt.Fprintf(&md, "\nAllreduce after the backward pass (SKD_DDP_OVERLAP=0), for reference:\n\n")
		}
		fmt.Fprintf(&md, "| nodes | images/node | global batch | Gb/s | compute s/it | allreduce s/it | exposed s/it | s/it | efficiency | COCO 1x R101->R50 SSIM wall time |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, gbps := range []float64{10, 25, 100} {
			for _, n := range []int{1, 2, 4, 8, 16, 32, 64} {
				pt := project(p, n, gbps, overlap)
				fmt.Fprintf(&md, "| %d | %d | %d | %.0f | %.2f | %.3f | %.3f | %.2f | %.1f%% | %.1f h (%.1f d) |\n",
					n, pt.perNode, pt.global, gbps, pt.compute, pt.comm, pt.exposed, pt.iter, 100*pt.eff, pt.wallH, pt.wallH/24)
				name := fmt.Sprintf("%.0f Gb/s", gbps)
				if n > 1 && overlap == p.Overlap {
					series[name] = append(series[name], plots.Point{X: float64(n), Y: pt.eff})
				}
			}
		}
	}
	fmt.Print(md.String())
	if *out != "" {
		if err := os.WriteFile(filepath.Join(*out, "dist_model.md"), []byte(md.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "distmodel:", err)
			os.Exit(1)
		}
		if err := plots.MetricCurves(filepath.Join(*out, "dist_scaling.png"), series, "projected scaling efficiency, COCO 1x R101->R50 SSIM",
			plots.WithXLabel("nodes"), plots.WithYLabel("efficiency (overlapped allreduce)"), plots.WithYRange(0.75, 1.01)); err != nil {
			fmt.Fprintln(os.Stderr, "distmodel:", err)
			os.Exit(1)
		}
	}
}

// check compares the model with the figures measured on one machine: two
// ranks of one thread should take the time of one rank of two threads
// (same cores) plus the allreduce not hidden; the 2-rank runs with and
// without overlap give the hidden fraction; and the R50-FPN allreduce
// measured between 2 local ranks gives the shared-memory bandwidth, which
// replaces nothing in the projection (a network link is slower) but
// bounds the packing overhead.
func check(md *strings.Builder, path string, p *params) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var b bench
	if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if b.R50Allreduce.GradBytes > 0 {
		p.GradBytes = b.R50Allreduce.GradBytes
	}
	if b.R50Allreduce.Buckets > 0 {
		p.Buckets, p.LastShare = b.R50Allreduce.Buckets, b.R50Allreduce.LastShare
	}
	a, nb := b.SmallAllreduce.Seconds, math.Max(b.Buckets, 1)
	predSerial := b.OneRankTwoThreadsS + a
	backward := p.Backward * b.OneRankTwoThreadsS
	predExposed := math.Max(b.SmallAllreduce.LastShare*a, a-p.Overlap*backward)
	pred := b.OneRankTwoThreadsS + predExposed
	rel := func(x, y float64) float64 { return 100 * (x - y) / y }
	fmt.Fprintf(md, "Check against this machine (%s): 1 rank x 2 threads %.3f s/it. 2 ranks x 1 thread, %.0f buckets, allreduce after the backward pass: "+
		"measured %.3f s/it (allreduce %.3f s/it, DataParallel %.3f s/it in the log), model %.3f s/it (1x2 compute + %.3f s allreduce of %.1f MB): %+.1f%%. "+
		"Overlapped: measured %.3f s/it (allreduce %.3f s/it, of it after the backward pass %.3f s/it, DataParallel %.3f s/it), "+
		"model %.3f s/it (exposed %.3f s): %+.1f%%. Hidden behind the backward pass: %.0f%% of the overlapped run's allreduce time, "+
		"%.0f%% of the serial run's (target: at least half). Overlapped with the communication thread at nice 19: %.3f s/it, after the backward pass %.3f s/it, "+
		"hidden %.0f%% of the serial run's. R50-FPN gradients (%.1f MB) between 2 local ranks: %.3f s per allreduce.\n\n",
		path, b.OneRankTwoThreadsS, nb, b.SerialS, b.SerialCommS, b.SerialWaitS, predSerial, a, b.SmallAllreduce.GradBytes/1e6, rel(predSerial, b.SerialS),
		b.TwoRanksOneThreadS, b.TwoRanksCommS, b.CommExposedS, b.CommWaitS, pred, predExposed, rel(pred, b.TwoRanksOneThreadS),
		100*b.Hidden, 100*b.HiddenVsSerial, b.NiceS, b.NiceExposedS, 100*b.NiceHidden, b.R50Allreduce.GradBytes/1e6, b.R50Allreduce.Seconds)
	return nil
}
