// Command bench_kd_overhead measures what distillation adds to a training
// iteration: it times a plain student step, the teacher's forward pass
// (backbone + FPN) and a distillation step (teacher forward + student step
// with the KD loss) on the same batch, and prints
// distill / (plain + teacher forward) per KD loss (issue target <= 1.4).
//
//	go run ./scripts/bench_kd_overhead [-iters 5] [-losses ssim,l1,l2,pkd,cwd,mgd] [-cpuprofile DIR]
//
// With -cpuprofile every measured phase (its warm-up and timed runs)
// writes a CPU profile into DIR: plain.pprof, then per loss
// teacher_LOSS.pprof and distill_LOSS.pprof, so that a distillation
// step's functions can be set against the plain step's and the teacher's
// (go tool pprof -top DIR/distill_ssim.pprof), and the allocations and
// garbage collections per run of every phase are printed.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/model"
	"github.com/skd-go/skd/train"
)

func main() {
	student := flag.String("student", "configs/experiment/student.yaml", "student config")
	teacher := flag.String("teacher", "configs/experiment/teacher.yaml", "teacher config")
	iters := flag.Int("iters", 5, "timed iterations (after 2 warm-up runs)")
	losses := flag.String("losses", "ssim,l1,l2,pkd,cwd,mgd", "KD losses")
	flag.StringVar(&profDir, "cpuprofile", "", "write a CPU profile of every phase into this directory")
	flag.Parse()
	if err := run(*student, *teacher, *iters, strings.Split(*losses, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench_kd_overhead:", err)
		os.Exit(1)
	}
}

// profDir is -cpuprofile's directory ("": no profiles).
var profDir string

// median runs f iters+2 times and returns the median time of the last
// iters runs in ms; with -cpuprofile all runs are profiled into
// profDir/name.pprof.
func median(name string, f func() error, iters int) (float64, error) {
	if profDir != "" {
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			return 0, err
		}
		pf, err := os.Create(filepath.Join(profDir, name+".pprof"))
		if err != nil {
			return 0, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	if profDir != "" {
		defer func() {
			var ms1 runtime.MemStats
			runtime.ReadMemStats(&ms1)
			k := uint64(iters + 2)
			fmt.Printf("  %s: %d allocations, %.1f MB allocated, %.1f GCs per run\n", name,
				(ms1.Mallocs-ms0.Mallocs)/k, float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(k)/1e6, float64(ms1.NumGC-ms0.NumGC)/float64(k))
		}()
	}
	var ts []float64
	for i := 0; i < iters+2; i++ {
		t := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		if i >= 2 {
			ts = append(ts, time.Since(t).Seconds()*1000)
		}
	}
	sort.Float64s(ts)
	return ts[len(ts)/2], nil
}

func input(cfg *config.File) *model.Input {
	n, h, w := cfg.Solver.IMSPerBatch, cfg.Input.MinSizeTest, cfg.Input.MinSizeTest
	in := &model.Input{N: n, H: h, W: w, Images: detrand.Symmetric("bench_img", n*3*h*w, 1)}
	for i := 0; i < n; i++ {
		in.Sizes = append(in.Sizes, [2]int{h, w})
		in.GT = append(in.GT, []float32{10, 12, 60, 70, 100, 40, 180, 150, 200, 200, 230, 222, 30, 150, 140, 300})
		in.GTLabels = append(in.GTLabels, []int{1, 2, 3, 4})
	}
	return in
}

func run(studentCfg, teacherCfg string, iters int, losses []string) error {
	scfg, _, err := config.LoadFile(studentCfg, nil)
	if err != nil {
		return err
	}
	tcfg, _, err := config.LoadFile(teacherCfg, nil)
	if err != nil {
		return err
	}
	in := input(scfg)
	plain, err := model.New(scfg.Model)
	if err != nil {
		return err
	}
	plain.Init(1)
	tPlain, err := median("plain", func() error { _, _, err := plain.TrainStep(in); return err }, iters)
	if err != nil {
		return err
	}
	teacher, err := model.New(tcfg.Model)
	if err != nil {
		return err
	}
	teacher.Init(2)
	fmt.Printf("batch %dx3x%dx%d; student %s (R%d x%.2f), teacher %s (R%d x%.2f); medians of %d\n", in.N, in.H, in.W,
		studentCfg, scfg.Model.Backbone.Depth, scfg.Model.Backbone.WidthMult, teacherCfg, tcfg.Model.Backbone.Depth, tcfg.Model.Backbone.WidthMult, iters)
	fmt.Printf("plain student step: %.0f ms\n", tPlain)
	for _, l := range losses {
		cfg := *scfg
		cfg.Distill.Loss, cfg.Distill.Weight = l, 0
		cfg.Teacher.Config = teacherCfg
		det, err := model.New(cfg.Model)
		if err != nil {
			return err
		}
		det.Init(1)
		d := train.NewDistillWith(tcfg, teacher)
		if err := d.Attach(&cfg, det); err != nil {
			return err
		}
		tFwd, err := median("teacher_"+l, func() error { return d.TeacherForward(in) }, iters)
		if err != nil {
			return err
		}
		tKD, err := median("distill_"+l, func() error {
			if err := d.TeacherForward(in); err != nil {
				return err
			}
			_, _, err := det.TrainStep(in)
			return err
		}, iters)
		if err != nil {
			return err
		}
		fmt.Printf("%-5s teacher forward %5.0f ms, distillation step %5.0f ms: ratio %.2f of (plain + teacher forward)\n", l, tFwd, tKD, tKD/(tPlain+tFwd))
	}
	return nil
}
