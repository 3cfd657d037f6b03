// Command bench_kd_overhead measures what distillation adds to a training
// iteration: it times a plain student step, the teacher's forward pass
// (backbone + FPN) and a distillation step (teacher forward + student step
// with the KD loss) on the same batch, and prints
// distill / (plain + teacher forward) per KD loss (issue target <= 1.4).
//
//	go run ./scripts/bench_kd_overhead [-iters 5] [-losses ssim,l1,l2,pkd,cwd,mgd]
package main

import (
	"flag"
	"fmt"
	"os"
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
	flag.Parse()
	if err := run(*student, *teacher, *iters, strings.Split(*losses, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench_kd_overhead:", err)
		os.Exit(1)
	}
}

func median(f func() error, iters int) (float64, error) {
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
	tPlain, err := median(func() error { _, _, err := plain.TrainStep(in); return err }, iters)
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
		tFwd, err := median(func() error { return d.TeacherForward(in) }, iters)
		if err != nil {
			return err
		}
		tKD, err := median(func() error {
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
