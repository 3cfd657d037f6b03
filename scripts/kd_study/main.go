// Command kd_study runs the distillation study of issue 11 on the hard
// synthetic set, resumably, and writes its report:
//
//	go run ./scripts/kd_study                 # the whole plan (hours of quiet CPU)
//	go run ./scripts/kd_study -report         # only the report, from committed results
//	go run ./scripts/kd_study -smoke          # the whole plan on a tiny budget (< 2 min)
//
// The plan (configs/kd_study/teacher.yaml and student.yaml):
//
//  1. teacher: trained once.
//  2. convergence: the no-KD student at budget B for every seed; the mean
//     AP over seeds must change by less than -converge (0.01) between its
//     last two evaluations (evaluations every B/8; the LR steps at 2/3 B
//     and 8/9 B, so the last two straddle the final decay); otherwise B
//     doubles (up to -max-budget). Every student gets the final B.
//  3. weight sweep: for each KD method, seed 1, budget -sweep-frac x B,
//     each weight of its grid (0.5x, 1x, 2x the method's default), scored
//     on the holdout split (training images never trained on; never val).
//     The best holdout AP picks the method's weight.
//  4. main runs: none, l1, l2, ssim x -seeds; pkd, cwd, mgd x -extra-seeds;
//     all at budget B with the chosen weights, evaluated on val.
//  5. SSIM ablations (seed 1, budget B, val): terms cs / s, FPN levels,
//     window, 0.5x / 2x weight.
//
// Every run is a kdtrain work dir under -work; an interrupted run resumes
// from its last checkpoint (kdtrain --resume); a finished run's metrics
// (evaluation rows, final numbers, seconds per iteration, the resolved
// configuration's hash) go to -results/runs/NAME.json, which is meant to
// be committed. A run whose results file exists with the same
// configuration hash is skipped, even on a machine without its work dir,
// so the study continues anywhere. The report (-results/study.md, the
// plots, and the marked block of docs/KD.md) is built from those files
// alone.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/kd"
)

type options struct {
	teacher, student     string
	work, results        string
	kdDoc                string
	kdtrain              string
	seeds, extraSeeds    []string
	mainMethods          []string
	extraMethods         []string
	budget, maxBudget    int
	sweepFrac            float64
	converge             float64
	grid                 []float64
	parallel             int
	report               bool
	minGap               float64
	extraSets            []string // appended to every run (smoke: tiny models)
	teacherSets          []string
	ablations            bool
	smoke                bool
	progressOut          io.Writer
	sweepWeightsOverride map[string][]float64
}

func main() {
	var o options
	var seeds, extra, grid, sweepW string
	flag.StringVar(&o.teacher, "teacher", "configs/kd_study/teacher.yaml", "teacher config")
	flag.StringVar(&o.student, "student", "configs/kd_study/student.yaml", "student config")
	flag.StringVar(&o.work, "work", "work_dirs/kd_study", "work directory root")
	flag.StringVar(&o.results, "results", "docs/kd_study", "results folder (runs/*.json, study.md, plots): commit it")
	flag.StringVar(&o.kdDoc, "kd-doc", "docs/KD.md", "document whose <!-- kd_study:begin/end --> block gets the report ('' = none)")
	flag.StringVar(&o.kdtrain, "kdtrain", "", "kdtrain binary (default: go build it)")
	flag.StringVar(&seeds, "seeds", "1,2,3", "seeds of none, l1, l2, ssim")
	flag.StringVar(&extra, "extra-seeds", "1", "seeds of pkd, cwd, mgd")
	flag.IntVar(&o.budget, "budget", 2400, "first no-KD budget B (iterations)")
	flag.IntVar(&o.maxBudget, "max-budget", 19200, "largest budget the convergence rule may reach")
	flag.Float64Var(&o.sweepFrac, "sweep-frac", 0.5, "sweep runs' budget as a fraction of B")
	flag.Float64Var(&o.converge, "converge", 0.01, "convergence: |mean AP(last) - mean AP(previous evaluation)| below this")
	flag.StringVar(&grid, "grid", "0.5,1,2", "weight grid, multiples of each method's default weight")
	flag.StringVar(&sweepW, "sweep-weights", "", "explicit grids, e.g. 'ssim=1,2,4;l2=0.5,1' (override -grid per method)")
	flag.IntVar(&o.parallel, "parallel", 1, "runs at once (each gets GOMAXPROCS = cores / parallel)")
	flag.BoolVar(&o.report, "report", false, "only write the report from the results folder")
	flag.Float64Var(&o.minGap, "min-gap", 0.10, "warn when teacher AP - no-KD AP is below this")
	flag.BoolVar(&o.ablations, "ablations", true, "run the SSIM ablations")
	flag.BoolVar(&o.smoke, "smoke", false, "tiny end-to-end run in a temporary directory (checks the driver; writes nothing in the repository)")
	flag.Parse()
	o.seeds, o.extraSeeds = split(seeds), split(extra)
	o.mainMethods, o.extraMethods = []string{"none", "l1", "l2", "ssim"}, []string{"pkd", "cwd", "mgd"}
	for _, g := range split(grid) {
		v, err := strconv.ParseFloat(g, 64)
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "kd_study: -grid %q: want positive numbers\n", grid)
			os.Exit(2)
		}
		o.grid = append(o.grid, v)
	}
	if sweepW != "" {
		o.sweepWeightsOverride = map[string][]float64{}
		for _, part := range strings.Split(sweepW, ";") {
			m, ws, ok := strings.Cut(part, "=")
			if !ok {
				fmt.Fprintf(os.Stderr, "kd_study: -sweep-weights %q: want method=w1,w2;...\n", part)
				os.Exit(2)
			}
			for _, w := range split(ws) {
				v, err := strconv.ParseFloat(w, 64)
				if err != nil || v <= 0 {
					fmt.Fprintf(os.Stderr, "kd_study: -sweep-weights %q: bad weight %q\n", part, w)
					os.Exit(2)
				}
				o.sweepWeightsOverride[m] = append(o.sweepWeightsOverride[m], v)
			}
		}
	}
	o.progressOut = os.Stdout
	var err error
	if o.smoke {
		err = smoke(o)
	} else {
		err = runStudy(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kd_study:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// A run is one kdtrain training of the plan.
type run struct {
	Name    string   `json:"name"`              // results/runs/NAME.json, work/NAME
	Phase   string   `json:"phase"`             // teacher, converge, sweep, main, ablation
	Method  string   `json:"method"`            // none, l1, ..., or teacher
	Seed    string   `json:"seed"`              // train.seed
	Weight  float64  `json:"weight,omitempty"`  // distill.weight
	Budget  int      `json:"budget"`            // solver.max_iter
	Split   string   `json:"split"`             // val or holdout
	Variant string   `json:"variant,omitempty"` // ablation label
	Config  string   `json:"config"`
	Sets    []string `json:"sets"`
}

// Result is what a finished run leaves in results/runs/NAME.json.
type Result struct {
	run
	ConfigHash string               `json:"config_hash"`
	Evals      []map[string]float64 `json:"evals"` // iter, AP, AP50, AP75, APs, APm, APl, AR100
	Final      map[string]float64   `json:"final"`
	Teacher    map[string]float64   `json:"teacher,omitempty"` // the teacher's val metrics logged by a KD run
	SecPerIter float64              `json:"sec_per_iter"`      // the last training segment's mean step time
	Iters      int64                `json:"iters"`
	Finished   string               `json:"finished"`
}

// schedule returns the sets that give a budget its schedule: LR steps at
// 2/3 and 8/9 of it (detectron2's 1x proportions), 8 evaluations and 8
// checkpoints (the resume granularity), warmup min(100, B/10).
func schedule(b int) []string {
	s1 := max(2*b/3, 1)
	s2 := max(8*b/9, s1+1)
	return []string{
		fmt.Sprintf("solver.max_iter=%d", b),
		fmt.Sprintf("solver.steps=[%d,%d]", s1, s2),
		fmt.Sprintf("solver.warmup_iters=%d", min(100, max(b/10, 1))),
		fmt.Sprintf("train.eval_period=%d", max(b/8, 1)),
		fmt.Sprintf("train.checkpoint_period=%d", max(b/8, 1)),
	}
}

func weightName(w float64) string {
	return strings.ReplaceAll(strconv.FormatFloat(w, 'g', 4, 64), ".", "p")
}

type study struct {
	o       options
	bin     string
	tdir    string
	synthOK sync.Once
	mu      sync.Mutex
	results map[string]*Result
}

func runStudy(o options) error {
	s := &study{o: o, results: map[string]*Result{}}
	if err := s.loadResults(); err != nil {
		return err
	}
	if o.report {
		return s.writeReport()
	}
	if o.kdtrain == "" {
		s.bin = filepath.Join(os.TempDir(), fmt.Sprintf("kdtrain-study-%d", os.Getpid()))
		if out, err := exec.Command("go", "build", "-o", s.bin, "./cmd/kdtrain").CombinedOutput(); err != nil {
			return fmt.Errorf("building kdtrain: %v\n%s", err, out)
		}
		defer os.Remove(s.bin)
	} else {
		s.bin = o.kdtrain
	}
	// 1. teacher
	teacher := run{Name: "teacher", Phase: "teacher", Method: "teacher", Split: "val", Config: o.teacher, Sets: o.teacherSets}
	if err := s.do(teacher); err != nil {
		return err
	}
	s.tdir = filepath.Join(o.work, "teacher")
	// 2. convergence of the no-KD student
	b := o.budget
	for {
		var runs []run
		for _, seed := range o.seeds {
			runs = append(runs, s.student("converge", "none", seed, 0, b, "val", "", nil))
		}
		if err := s.doAll(runs); err != nil {
			return err
		}
		delta, ok := s.converged(runs)
		s.logf("no-KD budget %d: last two evaluations' mean AP differ by %.4f (rule < %.3g): %v\n", b, delta, o.converge, ok)
		if ok {
			break
		}
		if 2*b > o.maxBudget {
			s.logf("budget %d is the largest allowed (-max-budget %d); the study goes on at it, NOT converged\n", b, o.maxBudget)
			break
		}
		b *= 2
	}
	if t := s.result("teacher"); t != nil {
		var aps []float64
		for _, seed := range o.seeds {
			if r := s.result(s.student("converge", "none", seed, 0, b, "val", "", nil).Name); r != nil {
				aps = append(aps, r.Final["AP"])
			}
		}
		m, _ := meanStd(aps)
		if gap := t.Final["AP"] - m; gap < o.minGap {
			s.logf("WARNING: teacher AP %.4f is only %.4f above the no-KD student's %.4f (the plan asks for >= %.2f): a bigger teacher or a smaller student would give distillation more to transfer\n", t.Final["AP"], gap, m, o.minGap)
		}
	}
	// 3. weight sweep on the holdout split
	chosen := map[string]float64{}
	sb := max(int(math.Round(o.sweepFrac*float64(b))), 1)
	kdMethods := append(append([]string{}, o.mainMethods...), o.extraMethods...)
	var sweep []run
	for _, m := range kdMethods {
		if m == "none" {
			continue
		}
		for _, w := range s.grid(m) {
			sweep = append(sweep, s.student("sweep", m, "1", w, sb, "holdout", "", nil))
		}
	}
	sweep = append(sweep, s.student("sweep", "none", "1", 0, sb, "holdout", "", nil))
	if err := s.doAll(sweep); err != nil {
		return err
	}
	for _, m := range kdMethods {
		if m == "none" {
			continue
		}
		best := math.Inf(-1)
		for _, w := range s.grid(m) {
			r := s.result(s.student("sweep", m, "1", w, sb, "holdout", "", nil).Name)
			if r != nil && r.Final["AP"] > best {
				best, chosen[m] = r.Final["AP"], w
			}
		}
		s.logf("sweep %s: weight %g (holdout AP %.4f)\n", m, chosen[m], best)
	}
	// 4. main runs
	var mainRuns []run
	for _, m := range o.mainMethods {
		for _, seed := range o.seeds {
			if m == "none" {
				mainRuns = append(mainRuns, s.student("converge", "none", seed, 0, b, "val", "", nil))
				continue
			}
			mainRuns = append(mainRuns, s.student("main", m, seed, chosen[m], b, "val", "", nil))
		}
	}
	for _, m := range o.extraMethods {
		for _, seed := range o.extraSeeds {
			mainRuns = append(mainRuns, s.student("main", m, seed, chosen[m], b, "val", "", nil))
		}
	}
	if err := s.doAll(mainRuns); err != nil {
		return err
	}
	// 5. SSIM ablations
	if o.ablations {
		w := chosen["ssim"]
		abl := []run{
			s.student("ablation", "ssim", "1", w, b, "val", "terms=cs", []string{"distill.terms=cs"}),
			s.student("ablation", "ssim", "1", w, b, "val", "terms=s", []string{"distill.terms=s"}),
			s.student("ablation", "ssim", "1", w, b, "val", "levels=P2", []string{"distill.levels=[0]"}),
			s.student("ablation", "ssim", "1", w, b, "val", "levels=P2-P4", []string{"distill.levels=[0,1,2]"}),
			s.student("ablation", "ssim", "1", w, b, "val", "levels=P4-P6", []string{"distill.levels=[2,3,4]"}),
			s.student("ablation", "ssim", "1", w, b, "val", "window=5", []string{"distill.options.window=5"}),
			s.student("ablation", "ssim", "1", w, b, "val", "window=7", []string{"distill.options.window=7"}),
			s.student("ablation", "ssim", "1", w/2, b, "val", "weight=0.5x", nil),
			s.student("ablation", "ssim", "1", 2*w, b, "val", "weight=2x", nil),
		}
		if err := s.doAll(abl); err != nil {
			return err
		}
	}
	return s.writeReport()
}

// grid returns method m's sweep weights.
func (s *study) grid(m string) []float64 {
	if ws, ok := s.o.sweepWeightsOverride[m]; ok {
		return ws
	}
	var ws []float64
	for _, g := range s.o.grid {
		ws = append(ws, g*kd.DefaultWeight(m))
	}
	return ws
}

// student describes a student run.
func (s *study) student(phase, method, seed string, w float64, budget int, split, variant string, extra []string) run {
	name := fmt.Sprintf("%s/%s_b%d_s%s", phase, method, budget, seed)
	sets := append([]string{"train.seed=" + seed}, schedule(budget)...)
	if method != "none" {
		name = fmt.Sprintf("%s/%s_w%s_b%d_s%s", phase, method, weightName(w), budget, seed)
		sets = append(sets, "teacher.config="+s.o.teacher, "teacher.weights="+filepath.Join(s.o.work, "teacher"),
			"distill.loss="+method, fmt.Sprintf("distill.weight=%g", w))
	}
	if variant != "" {
		name += "_" + strings.NewReplacer("=", "-", ".", "p").Replace(variant)
	}
	sets = append(sets, extra...)
	if split == "holdout" {
		sets = append(sets, "data.val.ann="+filepath.Join(s.synthDir(), "annotations", "instances_holdout.json"),
			"data.val.images="+filepath.Join(s.synthDir(), "holdout"))
	}
	sets = append(sets, s.o.extraSets...)
	return run{Name: name, Phase: phase, Method: method, Seed: seed, Weight: w, Budget: budget, Split: split, Variant: variant, Config: s.o.student, Sets: sets}
}

func (s *study) synthDir() string {
	cfg, _, err := config.LoadFile(s.o.student, s.o.extraSets)
	if err != nil || cfg.Data.Synth.Dir == "" {
		return "MISSING-data.synth.dir"
	}
	return cfg.Data.Synth.Dir
}

func (s *study) logf(format string, a ...any) {
	fmt.Fprintf(s.o.progressOut, time.Now().Format("15:04:05 ")+format, a...)
}

func (s *study) doAll(runs []run) error {
	sem := make(chan struct{}, max(s.o.parallel, 1))
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = s.do(r)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *study) result(name string) *Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.results[name]
}

// do trains r unless its results file exists with the same configuration
// hash; resumes an interrupted work dir; harvests the metrics.
func (s *study) do(r run) error {
	cfg, resolved, err := config.LoadFile(r.Config, r.Sets)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	if r.Budget == 0 {
		r.Budget = cfg.Solver.MaxIter
	}
	hash := config.Hash(resolved)
	dir := filepath.Join(s.o.work, r.Name)
	// The teacher's weights are needed by every student: its results file
	// alone does not make it done.
	needWeights := r.Phase == "teacher" && !exists(filepath.Join(dir, "checkpoints", "model_final"))
	if old := s.result(r.Name); old != nil && !needWeights {
		if old.ConfigHash == hash {
			s.logf("%s: done (results/runs/%s.json)\n", r.Name, r.Name)
			return nil
		}
		s.logf("%s: its results file was made with another configuration (%s, now %s); training again\n", r.Name, old.ConfigHash, hash)
	}
	args := []string{"--config", r.Config, "--work-dir", dir}
	for _, x := range r.Sets {
		args = append(args, "--set", x)
	}
	done := false
	// kdtrain --work-dir is a train.work_dir override: the work dir's
	// config.yaml is the resolved configuration with it (the results hash
	// is without it, so that it does not depend on -work).
	_, inDir, err := config.LoadFile(r.Config, append(append([]string{}, r.Sets...), "train.work_dir="+dir))
	if err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	if old, err := os.ReadFile(filepath.Join(dir, "config.yaml")); err == nil && !bytes.Equal(old, inDir) {
		aside := fmt.Sprintf("%s.old-%s", dir, time.Now().Format("20060102-150405"))
		s.logf("%s: work dir trained with another configuration; moved to %s\n", r.Name, aside)
		if err := os.Rename(dir, aside); err != nil {
			return err
		}
	}
	switch {
	case exists(filepath.Join(dir, "checkpoints", "model_final")):
		done = true
	case exists(filepath.Join(dir, "last_checkpoint")):
		args = append(args, "--resume")
	case exists(dir):
		aside := fmt.Sprintf("%s.old-%s", dir, time.Now().Format("20060102-150405"))
		s.logf("%s: work dir without a checkpoint; moved to %s\n", r.Name, aside)
		if err := os.Rename(dir, aside); err != nil {
			return err
		}
	}
	if !done {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		s.logf("%s: kdtrain %s\n", r.Name, strings.Join(args, " "))
		logf, err := os.OpenFile(dir+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		c := exec.Command(s.bin, args...)
		c.Stdout, c.Stderr = logf, logf
		if s.o.parallel > 1 {
			c.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", max(runtime.NumCPU()/s.o.parallel, 1)))
		}
		err = c.Run()
		logf.Close()
		if err != nil {
			return fmt.Errorf("%s: kdtrain: %v (see %s.log)", r.Name, err, dir)
		}
	}
	res, err := harvest(r, dir, hash)
	if err != nil {
		return err
	}
	if err := s.saveResult(res); err != nil {
		return err
	}
	s.logf("%s: AP %.4f\n", r.Name, res.Final["AP"])
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

var evalKeys = []string{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"}

// harvest reads a finished work dir's metrics.jsonl: the evaluation rows,
// the teacher row of a KD run, and the last logged mean step time.
func harvest(r run, dir, hash string) (*Result, error) {
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Name, err)
	}
	defer f.Close()
	res := &Result{run: r, ConfigHash: hash, Finished: time.Now().UTC().Format(time.RFC3339)}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		num := func(k string) (float64, bool) { v, ok := m[k].(float64); return v, ok }
		if _, ok := m["teacher_AP"]; ok {
			res.Teacher = map[string]float64{}
			for _, k := range evalKeys {
				if v, ok := num("teacher_" + k); ok {
					res.Teacher[k] = v
				}
			}
		}
		if _, ok := m["AP"]; ok {
			e := map[string]float64{}
			it, _ := num("iter")
			e["iter"] = it
			for _, k := range evalKeys {
				if v, ok := num(k); ok {
					e[k] = v
				}
			}
			res.Evals = append(res.Evals, e)
		}
		if t, ok := num("time"); ok {
			res.SecPerIter = t
			it, _ := num("iter")
			res.Iters = int64(it)
		}
	}
	if len(res.Evals) == 0 {
		return nil, fmt.Errorf("%s: no evaluation in %s/metrics.jsonl", r.Name, dir)
	}
	res.Final = res.Evals[len(res.Evals)-1]
	if int(res.Final["iter"]) != r.Budget {
		return nil, fmt.Errorf("%s: last evaluation at iteration %v, budget %d: not finished", r.Name, res.Final["iter"], r.Budget)
	}
	return res, nil
}

func (s *study) runsDir() string { return filepath.Join(s.o.results, "runs") }

func (s *study) saveResult(res *Result) error {
	p := filepath.Join(s.runsDir(), res.Name+".json")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	s.mu.Lock()
	s.results[res.Name] = res
	s.mu.Unlock()
	return nil
}

func (s *study) loadResults() error {
	root := s.runsDir()
	return filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if os.IsNotExist(err) && p == root {
			return nil
		}
		if err != nil {
			return err
		}
		if info.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		s.results[r.Name] = &r
		return nil
	})
}

// converged applies the convergence rule to the no-KD runs of one budget:
// the seed-mean AP of the last two evaluations.
func (s *study) converged(runs []run) (float64, bool) {
	var last, prev []float64
	for _, r := range runs {
		res := s.result(r.Name)
		if res == nil || len(res.Evals) < 2 {
			return math.NaN(), false
		}
		last = append(last, res.Evals[len(res.Evals)-1]["AP"])
		prev = append(prev, res.Evals[len(res.Evals)-2]["AP"])
	}
	ml, _ := meanStd(last)
	mp, _ := meanStd(prev)
	d := math.Abs(ml - mp)
	return d, d < s.o.converge
}

func meanStd(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	m := sum / float64(len(xs))
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	if len(xs) > 1 {
		v /= float64(len(xs) - 1)
	}
	return m, math.Sqrt(v)
}

func sortedNames(m map[string]*Result) []string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
