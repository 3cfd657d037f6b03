// Command bench_r50fpn times R50-FPN (fasterrcnn_resnet50_fpn's backbone:
// FrozenBN, stages 2-4 trainable) forward+backward of a scalar loss on a
// batch, and reports the peak RSS; scripts/bench_r50fpn.sh runs it beside
// scripts/bench_r50fpn_torch.py and prints the ratios.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/backbone"
	"github.com/skd-go/skd/fpn"
	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/layers"
)

func main() {
	n := flag.Int("n", 2, "batch size")
	size := flag.Int("size", 512, "image side")
	iters := flag.Int("iters", 5, "timed iterations")
	fwdOnly := flag.Bool("forward", false, "forward only (inference)")
	flag.Parse()
	if err := run(*n, *size, *iters, *fwdOnly); err != nil {
		fmt.Fprintln(os.Stderr, "bench_r50fpn:", err)
		os.Exit(1)
	}
}

func run(n, size, iters int, fwdOnly bool) error {
	reg := layers.NewRegistry()
	body, err := backbone.NewResNet(reg, backbone.Config{Depth: 50, WidthMult: 1, FrozenStages: 1, BNEps: 1e-5, Prefix: "backbone.body."})
	if err != nil {
		return err
	}
	f, err := fpn.New(reg, "backbone.fpn.", body.OutChannels[:], 256)
	if err != nil {
		return err
	}
	for _, p := range reg.Params() {
		copy(p.Data(), detrand.Param(p.Name, p.Shape()))
	}
	t0 := time.Now()
	b := layers.NewBuilder(reg)
	shape := []int{n, 3, size, size}
	x := b.Input("image", shape...)
	c := body.Forward(b, x)
	ps := f.Forward(b, c[:])
	var loss *G.Node
	for l, p := range ps {
		d := b.Dot(p, detrand.Symmetric(fmt.Sprintf("R_%d", l), p.Shape().TotalSize(), 1))
		if loss == nil {
			loss = d
		} else {
			loss = G.Must(G.Add(loss, d))
		}
	}
	if err := b.Err(); err != nil {
		return err
	}
	if !fwdOnly {
		nodes, _ := b.TrainableNodes()
		if _, err := G.Grad(loss, nodes...); err != nil {
			return err
		}
	}
	G.Let(x, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(detrand.Symmetric("img", tensor.Shape(shape).TotalSize(), 1))))
	m, err := layers.NewMachine(b.G)
	if err != nil {
		return err
	}
	build := time.Since(t0)
	var times []float64
	for i := 0; i < iters+1; i++ {
		t := time.Now()
		if err := m.Run(); err != nil {
			return err
		}
		if i > 0 {
			times = append(times, time.Since(t).Seconds()*1000)
		}
	}
	sort.Float64s(times)
	mode := "fwd+bwd"
	if fwdOnly {
		mode = "fwd"
	}
	fmt.Printf("go R50-FPN %s %dx3x%dx%d: median %.0f ms, best %.0f ms (graph build+compile %.0f ms, %d nodes), peak RSS %s\n",
		mode, n, size, size, times[len(times)/2], times[0], build.Seconds()*1000, b.G.AllNodes().Len(), peakRSS())
	return nil
}

func peakRSS() string {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "?"
}
