// Command bench_detector times the project's Faster R-CNN R50-FPN (91
// classes, FrozenBN, stages 2-4 trainable, torchvision defaults) with
// deterministic weights (detrand, as scripts/golden_common.fill_model):
// inference (Detect, batch 1) or a training step (TrainStep: forward,
// sampling, losses, backward; no optimizer) on an already-normalised
// square batch, the transform bypassed; it reports the median and best
// times and the peak RSS. scripts/bench_detector.sh runs it beside
// scripts/bench_detector_torch.py.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/model"
)

func main() {
	n := flag.Int("n", 1, "batch size")
	size := flag.Int("size", 512, "image side")
	iters := flag.Int("iters", 5, "timed iterations (after one warm-up)")
	train := flag.Bool("train", false, "time TrainStep instead of Detect")
	initW := flag.Bool("init", false, "draw the weights with FasterRCNN.Init (reference initialisers) instead of detrand")
	cpuProf := flag.String("cpuprofile", "", "write a CPU profile of the timed iterations to this file")
	flag.Parse()
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench_detector:", err)
			os.Exit(2)
		}
		profFile = f
	}
	if err := run(*n, *size, *iters, *train, *initW); err != nil {
		fmt.Fprintln(os.Stderr, "bench_detector:", err)
		os.Exit(1)
	}
}

// profFile receives a CPU profile of the timed iterations when set.
var profFile *os.File

func run(n, size, iters int, train, initW bool) error {
	d, err := model.New(model.Defaults())
	if err != nil {
		return err
	}
	if initW {
		d.Init(1)
	} else {
		for _, p := range d.Reg.Params() {
			copy(p.Data(), detrand.Param(p.Name, p.Shape()))
		}
	}
	in := &model.Input{N: n, H: size, W: size, Images: detrand.Symmetric("bench_images", n*3*size*size, 1)}
	for i := 0; i < n; i++ {
		s := float32(size) / 512
		in.Sizes = append(in.Sizes, [2]int{size, size})
		in.GT = append(in.GT, []float32{40 * s, 60 * s, 200 * s, 300 * s, 250 * s, 100 * s, 480 * s, 400 * s, 100 * s, 350 * s, 180 * s, 500 * s})
		in.GTLabels = append(in.GTLabels, []int{1, 18, 3})
	}
	var times []float64
	var first float64
	dets := 0
	for i := 0; i < iters+1; i++ {
		t := time.Now()
		if train {
			l, _, err := d.TrainStep(in)
			if err != nil {
				return err
			}
			if err := l.CheckFinite(); err != nil {
				return err
			}
		} else {
			out, _, err := d.Detect(in)
			if err != nil {
				return err
			}
			dets = len(out[0].Scores)
		}
		ms := time.Since(t).Seconds() * 1000
		if i == 0 {
			first = ms
			if profFile != nil {
				if err := pprof.StartCPUProfile(profFile); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
		} else {
			times = append(times, ms)
		}
	}
	sort.Float64s(times)
	mode := "inference"
	if train {
		mode = "train step"
	} else {
		mode += fmt.Sprintf(" (%d detections)", dets)
	}
	fmt.Printf("go Faster R-CNN R50-FPN %s %dx3x%dx%d: median %.0f ms, best %.0f ms (first run with graph build %.0f ms), peak RSS %s\n",
		mode, n, size, size, times[len(times)/2], times[0], first, peakRSS())
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
