// Command kd_experiment reproduces the paper's comparison at CPU scale on
// the synthetic set: the teacher is trained once, then students with no
// KD, l1, l2, SSIM, PKD, CWD and MGD, the same budget, several seeds each.
// It writes a Markdown table (mean ± std of AP, AP50, APs, APm, APl) and a
// bar plot.
//
//	go run ./scripts/kd_experiment -teacher configs/experiment/teacher.yaml \
//	    -student configs/experiment/student.yaml -seeds 1,2,3 -out docs/kd_experiment
//
// Runs that already finished (their work dir holds model_final) are not
// repeated, so an interrupted experiment continues where it stopped.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/skd-go/skd/plots"
)

var parallel = 1

func main() {
	teacher := flag.String("teacher", "configs/experiment/teacher.yaml", "teacher config")
	student := flag.String("student", "configs/experiment/student.yaml", "student config (distill section set per method)")
	methods := flag.String("methods", "none,l1,l2,ssim,pkd,cwd,mgd", "methods")
	seeds := flag.String("seeds", "1,2,3", "seeds")
	work := flag.String("work", "work_dirs/kd_experiment", "work directory root")
	out := flag.String("out", "docs/kd_experiment", "output prefix (.md and .png)")
	kdtrain := flag.String("kdtrain", "", "kdtrain binary (default: go build it)")
	only := flag.Bool("summarize", false, "only summarise finished runs")
	flag.IntVar(&parallel, "parallel", 1, "student runs at once (each gets GOMAXPROCS = cores / parallel)")
	flag.Parse()
	if err := run(*teacher, *student, strings.Split(*methods, ","), strings.Split(*seeds, ","), *work, *out, *kdtrain, *only); err != nil {
		fmt.Fprintln(os.Stderr, "kd_experiment:", err)
		os.Exit(1)
	}
}

func run(teacherCfg, studentCfg string, methods, seeds []string, work, out, bin string, only bool) error {
	if bin == "" && !only {
		bin = filepath.Join(os.TempDir(), "kdtrain-experiment")
		if o, err := exec.Command("go", "build", "-o", bin, "./cmd/kdtrain").CombinedOutput(); err != nil {
			return fmt.Errorf("building kdtrain: %v\n%s", err, o)
		}
	}
	tdir := filepath.Join(work, "teacher")
	if !only {
		if err := train(bin, teacherCfg, tdir, nil); err != nil {
			return err
		}
	}
	results := map[string][]map[string]float64{}
	if !only {
		type job struct {
			dir  string
			sets []string
		}
		var jobs []job
		for _, s := range seeds {
			for _, m := range methods {
				sets := []string{"train.seed=" + s}
				if m != "none" {
					sets = append(sets, "teacher.config="+teacherCfg, "teacher.weights="+tdir, "distill.loss="+m, "distill.weight=0")
				}
				jobs = append(jobs, job{filepath.Join(work, m+"_seed"+s), sets})
			}
		}
		sem := make(chan struct{}, max(parallel, 1))
		errs := make(chan error, len(jobs))
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				errs <- train(bin, studentCfg, j.dir, j.sets)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
	}
	for _, m := range methods {
		for _, s := range seeds {
			dir := filepath.Join(work, m+"_seed"+s)
			r, err := finalEval(dir)
			if err != nil {
				return err
			}
			results[m] = append(results[m], r)
		}
	}
	t, err := finalEval(tdir)
	if err != nil {
		return err
	}
	return report(out, methods, results, t, seeds, teacherCfg, studentCfg)
}

func train(bin, cfg, dir string, sets []string) error {
	if _, err := os.Stat(filepath.Join(dir, "checkpoints", "model_final")); err == nil {
		fmt.Printf("%s: done already\n", dir)
		return nil
	}
	args := []string{"--config", cfg, "--work-dir", dir}
	if _, err := os.Stat(filepath.Join(dir, "last_checkpoint")); err == nil {
		args = append(args, "--resume")
	} else {
		args = append(args, "--force") // a run killed before its first checkpoint is moved aside
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	fmt.Printf("%s kdtrain %s\n", time.Now().Format("15:04:05"), strings.Join(args, " "))
	c := exec.Command(bin, args...)
	if parallel > 1 {
		c.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", max(runtime.NumCPU()/parallel, 1)))
	}
	logf, err := os.Create(dir + ".log")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		if logf, err = os.Create(dir + ".log"); err != nil {
			return err
		}
	}
	defer logf.Close()
	c.Stdout, c.Stderr = logf, logf
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s: %v (see %s.log)", dir, err, dir)
	}
	return nil
}

// finalEval reads the last evaluation line of a run's metrics.jsonl.
func finalEval(dir string) (map[string]float64, error) {
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var last map[string]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if _, ok := m["AP"]; ok {
			last = map[string]float64{}
			for k, v := range m {
				if x, ok := v.(float64); ok {
					last[k] = x
				}
			}
		}
	}
	if last == nil {
		return nil, fmt.Errorf("%s: no evaluation in metrics.jsonl", dir)
	}
	return last, nil
}

func meanStd(xs []float64) (float64, float64) {
	var s float64
	for _, x := range xs {
		s += x
	}
	m := s / float64(len(xs))
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	if len(xs) > 1 {
		v /= float64(len(xs) - 1)
	}
	return m, math.Sqrt(v)
}

func report(out string, methods []string, res map[string][]map[string]float64, teacher map[string]float64, seeds []string, tcfg, scfg string) error {
	cols := []string{"AP", "AP50", "APs", "APm", "APl"}
	var b strings.Builder
	fmt.Fprintf(&b, "| method | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	fmt.Fprintf(&b, "| teacher (1 run) |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %.1f |", 100*teacher[c])
	}
	b.WriteString("\n")
	bars := map[string][]float64{}
	errs := map[string][]float64{}
	for _, m := range methods {
		fmt.Fprintf(&b, "| %s |", m)
		for _, c := range cols {
			var xs []float64
			for _, r := range res[m] {
				xs = append(xs, 100*r[c])
			}
			mu, sd := meanStd(xs)
			fmt.Fprintf(&b, " %.1f ± %.1f |", mu, sd)
			bars[m] = append(bars[m], mu)
			errs[m] = append(errs[m], sd)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nMean ± sample std over seeds %s; COCO-style AP (x100) on the synthetic val split. Teacher: %s, students: %s.\n", strings.Join(seeds, ", "), tcfg, scfg)
	fmt.Fprintf(&b, "\nPer run (AP x100):\n\n| method |%s\n|---|%s\n", strings.Repeat(" seed |", len(seeds)), strings.Repeat("---|", len(seeds)))
	for _, m := range methods {
		fmt.Fprintf(&b, "| %s |", m)
		for _, r := range res[m] {
			fmt.Fprintf(&b, " %.1f |", 100*r["AP"])
		}
		b.WriteString("\n")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out+".md", []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	return plots.BarChart(out+".png", cols, bars, errs, "Feature distillation on the synthetic set (mean ± std over seeds)", "AP x100")
}
