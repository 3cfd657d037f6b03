package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data/synth"
	"github.com/skd-go/skd/model"
	"github.com/skd-go/skd/model/weights"
	"github.com/skd-go/skd/train"
)

// The test binary doubles as kdtrain when KDTRAIN_AS_MAIN=1, so tests can
// run it as a real process and SIGKILL it.
func TestMain(m *testing.M) {
	if os.Getenv("KDTRAIN_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

var synthDir string

// tinySetup writes a tiny synthetic set (once) and a config for a tiny
// detector on it.
func tinySetup(t *testing.T, extra string) (cfgPath, workDir string) {
	t.Helper()
	if synthDir == "" {
		dir, err := os.MkdirTemp("", "kdtrain-synth-")
		if err != nil {
			t.Fatal(err)
		}
		if err := synth.Generate(filepath.Join(dir, "set"), synth.Options{Train: 8, Val: 4, Seed: 3, Size: 128}); err != nil {
			t.Fatal(err)
		}
		synthDir = filepath.Join(dir, "set")
	}
	base, err := filepath.Abs("../../configs/quickstart/base_synth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	workDir = filepath.Join(tmp, "work")
	cfg := fmt.Sprintf(`_base_: %s
model:
  backbone: {depth: 18, width_mult: 0.125}
  fpn_channels: 16
  roi_heads: {representation_size: 32, batch_size_per_image: 32}
  rpn: {batch_size_per_image: 64, pre_nms_top_n_train: 200, post_nms_top_n_train: 100, pre_nms_top_n_test: 100, post_nms_top_n_test: 50}
input: {min_size: [112, 128], min_size_test: 128, max_size: 128}
data:
  synth: {dir: "", train: 8, val: 4, seed: 3, size: 128}
  train: {ann: %s, images: %s}
  val: {ann: %s, images: %s}
  workers: 2
solver: {ims_per_batch: 2, base_lr: 0.01, warmup_iters: 5, steps: [1000], max_iter: 10}
train: {work_dir: %s, log_period: 1, checkpoint_period: 3, eval_period: 0, seed: 5}
%s`, base, synth.TrainAnnotations(synthDir), synth.TrainImages(synthDir), synth.ValAnnotations(synthDir), synth.ValImages(synthDir), workDir, extra)
	cfgPath = filepath.Join(tmp, "tiny.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, workDir
}

type metric struct {
	Iter   int64    `json:"iter"`
	Total  *float64 `json:"total"`
	Obj    float64  `json:"loss_objectness"`
	Cls    float64  `json:"loss_classifier"`
	BoxReg float64  `json:"loss_box_reg"`
	RPNBox float64  `json:"loss_rpn_box_reg"`
	// data-parallel runs
	CommTime    *float64 `json:"comm_time"`
	CommExposed *float64 `json:"comm_exposed"`
	CommWait    *float64 `json:"comm_wait"`
}

func readMetrics(t *testing.T, workDir string) map[int64]metric {
	t.Helper()
	f, err := os.Open(filepath.Join(workDir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int64]metric{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics.jsonl: %v: %s", err, sc.Text())
		}
		if m.Total != nil {
			if _, dup := out[m.Iter]; dup {
				t.Fatalf("iteration %d logged twice", m.Iter)
			}
			out[m.Iter] = m
		}
	}
	return out
}

func command(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), "KDTRAIN_AS_MAIN=1", "GOMAXPROCS=2")
	return c
}

// TestResumeAfterSIGKILL: a run killed with SIGKILL and resumed logs the
// same losses for every later iteration as an uninterrupted run.
func TestResumeAfterSIGKILL(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Log("running (short mode still runs this: it is the resume guarantee)")
	}
	cfgA, workA := tinySetup(t, "")
	if out, err := command("--config", cfgA).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	ref := readMetrics(t, workA)
	if len(ref) != 10 {
		t.Fatalf("uninterrupted run logged %d iterations", len(ref))
	}

	cfgB, workB := tinySetup(t, "")
	c := command("--config", cfgB)
	var buf bytes.Buffer
	c.Stdout, c.Stderr = &buf, &buf
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// kill once iteration 5 is logged (checkpoint at 3 exists, 4 and 5
	// were logged after it and must be recomputed identically)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		raw, _ := os.ReadFile(filepath.Join(workB, "metrics.jsonl"))
		if strings.Contains(string(raw), `"iter":5,`) || strings.Contains(string(raw), `"iter":5}`) {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("run did not reach iteration 5:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	if out, err := command("--config", cfgB, "--resume").CombinedOutput(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out)
	}
	got := readMetrics(t, workB)
	if len(got) != len(ref) {
		t.Fatalf("resumed log has %d iterations, uninterrupted %d", len(got), len(ref))
	}
	for it, r := range ref {
		g := got[it]
		for _, pair := range [][2]float64{{*r.Total, *g.Total}, {r.Obj, g.Obj}, {r.Cls, g.Cls}, {r.BoxReg, g.BoxReg}, {r.RPNBox, g.RPNBox}} {
			if math.Abs(pair[0]-pair[1]) > 1e-6*math.Max(math.Abs(pair[0]), 1e-12) {
				t.Errorf("iteration %d: uninterrupted %+v, resumed %+v", it, r, g)
				break
			}
		}
	}
	// the final weights agree too, BN running statistics included (they
	// never enter a training loss, so the log alone would not show them)
	final := func(work string) weights.StateDict {
		sd, _, err := weights.LoadSafetensors(filepath.Join(work, "checkpoints", "model_final", train.ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		return sd
	}
	sdA, sdB := final(workA), final(workB)
	stats := 0
	for k, a := range sdA {
		b, ok := sdB[k]
		if !ok || len(a.Data) != len(b.Data) {
			t.Fatalf("%s: missing or reshaped after resume", k)
		}
		if strings.HasSuffix(k, "running_var") && a.Data[0] != 1 {
			stats++
		}
		for i := range a.Data {
			if math.Abs(float64(a.Data[i]-b.Data[i])) > 1e-5*(1+math.Abs(float64(a.Data[i]))) {
				t.Errorf("%s[%d]: uninterrupted %v, resumed %v", k, i, a.Data[i], b.Data[i])
				break
			}
		}
	}
	if stats == 0 {
		t.Errorf("no BN running statistics moved: the tiny config should train with norm BN")
	}
}

// TestLossFalls: a few dozen iterations on a handful of images lower the
// loss.
func TestLossFalls(t *testing.T) {
	cfg, work := tinySetup(t, "")
	if out, err := command("--config", cfg, "--set", "solver.max_iter=40", "--set", "solver.base_lr=0.02", "--set", "train.checkpoint_period=0").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// --print-config prints exactly what the run saved as config.yaml
	var out, errb bytes.Buffer
	if code := run([]string{"--config", cfg, "--set", "solver.max_iter=40", "--set", "solver.base_lr=0.02", "--set", "train.checkpoint_period=0", "--print-config"}, &out, &errb); code != 0 {
		t.Fatalf("--print-config: exit %d: %s", code, errb.String())
	}
	if saved, err := os.ReadFile(filepath.Join(work, "config.yaml")); err != nil || !bytes.Equal(saved, out.Bytes()) {
		t.Errorf("--print-config differs from the saved config.yaml (%v):\n%s\n---\n%s", err, out.String(), saved)
	}
	m := readMetrics(t, work)
	mean := func(lo, hi int64) float64 {
		s := 0.0
		for i := lo; i <= hi; i++ {
			s += *m[i].Total
		}
		return s / float64(hi-lo+1)
	}
	first, last := mean(1, 5), mean(36, 40)
	t.Logf("mean total loss: iterations 1-5 %.3f, 36-40 %.3f", first, last)
	if !(last < 0.8*first) {
		t.Errorf("loss did not fall: %.3f -> %.3f", first, last)
	}
}

func TestBadInvocations(t *testing.T) {
	cfg, _ := tinySetup(t, "")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{}, "--config is required"},
		{[]string{"--config", cfg, "--set", "solver.lerning_rate=1"}, "unknown key"},
		{[]string{"--config", cfg, "--set", "solver.max_iter=abc"}, "want an integer"},
		{[]string{"--config", cfg, "--set", "data.train.ann=/nonexistent/ann.json"}, "/nonexistent/ann.json"},
		{[]string{"--config", cfg, "--set", "train.work_dir=/proc/forbidden"}, "work dir"},
		{[]string{"--config", "/nonexistent.yaml"}, "nonexistent.yaml"},
		{[]string{"--config", cfg, "--bogus"}, "unknown flag"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != 2 {
			t.Errorf("%v: exit code %d, want 2 (stderr %q)", c.args, code, errb.String())
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: stderr %q does not mention %q", c.args, errb.String(), c.want)
		}
	}
}

// TestNaNLossStops: a learning rate that blows the weights up stops the
// run with a message naming the iteration, exit code 1, and leaves the
// last good checkpoint as last_checkpoint.
func TestNaNLossStops(t *testing.T) {
	cfg, work := tinySetup(t, "")
	out, err := command("--config", cfg, "--set", "solver.base_lr=1e12", "--set", "solver.warmup_iters=0", "--set", "solver.max_iter=30", "--set", "solver.clip_grad_norm=0").CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit code 1, got %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "non-finite loss at iteration") {
		t.Fatalf("no clear NaN message:\n%s", out)
	}
	if raw, err := os.ReadFile(filepath.Join(work, "last_checkpoint")); err == nil {
		dir := filepath.Join(work, strings.TrimSpace(string(raw)))
		if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
			t.Errorf("last_checkpoint names a broken checkpoint: %v", err)
		}
	}
}

// teacherRun trains a tiny teacher once and returns its config and work dir.
func teacherRun(t *testing.T) (string, string) {
	cfg, work := tinySetup(t, "")
	if out, err := command("--config", cfg, "--set", "solver.max_iter=6").CombinedOutput(); err != nil {
		t.Fatalf("teacher: %v\n%s", err, out)
	}
	return cfg, work
}

// TestDistillationRun: a student distilled with SSIM from a frozen teacher
// logs loss_kd, leaves the teacher's weights bit-identical, builds no
// gradient node for the teacher, and exports student-only weights that a
// plain detector loads.
func TestDistillationRun(t *testing.T) {
	tcfg, twork := teacherRun(t)
	extra := fmt.Sprintf("teacher: {config: %s, weights: %s}\ndistill: {loss: ssim, weight: 2, adapter: true}\n", tcfg, twork)
	cfgPath, work := tinySetup(t, extra)
	cfg, resolved, err := config.LoadFile(cfgPath, []string{"solver.max_iter=4"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := train.NewDistill(cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string][]float32{}
	for _, p := range d.Teacher.Reg.Params() {
		before[p.Name] = append([]float32(nil), p.Data()...)
	}
	var out bytes.Buffer
	tr, err := train.New(train.Options{Config: cfg, Resolved: resolved, Out: &out, Extensions: []train.Extension{d}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, p := range d.Teacher.Reg.Params() {
		for i, v := range p.Data() {
			if v != before[p.Name][i] {
				t.Fatalf("teacher parameter %s changed during distillation", p.Name)
			}
		}
		if p.Trainable() {
			t.Errorf("teacher parameter %s is trainable", p.Name)
		}
	}
	graphs := d.TeacherGraphs()
	if len(graphs) == 0 {
		t.Fatal("no teacher graph built")
	}
	for _, g := range graphs {
		for _, n := range g.AllNodes() {
			if op := n.Op(); op != nil {
				s := op.String()
				if strings.Contains(s, ".dx") || strings.Contains(s, ".dw") || strings.Contains(s, ".db") || strings.Contains(s, "dscale") || strings.Contains(s, "dmask") {
					t.Fatalf("teacher graph holds a gradient op %s", s)
				}
			}
		}
	}
	m := readMetricsAll(t, work)
	if !strings.Contains(m, `"loss_kd"`) || !strings.Contains(m, `"teacher_AP"`) {
		t.Errorf("metrics.jsonl lacks loss_kd or teacher_AP:\n%s", m)
	}
	sd, _, err := weights.LoadSafetensors(filepath.Join(work, "student_final.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for k := range sd {
		if strings.HasPrefix(k, "distill.") {
			t.Errorf("student export holds %s", k)
		}
	}
	plain, err := model.New(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := model.LoadWeights(plain.Reg, filepath.Join(work, "student_final.safetensors"), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unexpected) != 0 || len(rep.Missing) != 0 {
		t.Errorf("student export: unexpected %v missing %v", rep.Unexpected, rep.Missing)
	}
}

// TestDistillationResume: resume works for distillation runs as for plain
// runs (same losses, loss_kd included, after a SIGKILL).
func TestDistillationResume(t *testing.T) {
	tcfg, twork := teacherRun(t)
	extra := fmt.Sprintf("teacher: {config: %s, weights: %s}\ndistill: {loss: mgd, adapter: true}\n", tcfg, twork)
	cfgA, workA := tinySetup(t, extra)
	if out, err := command("--config", cfgA).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cfgB, workB := tinySetup(t, extra)
	c := command("--config", cfgB)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(readMetricsAll(t, workB), `"iter":5,`) {
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatal("did not reach iteration 5")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	if out, err := command("--config", cfgB, "--resume").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ref, got := kdLosses(t, workA), kdLosses(t, workB)
	if len(ref) != 10 || len(got) != 10 {
		t.Fatalf("logged %d and %d iterations", len(ref), len(got))
	}
	for it, r := range ref {
		if math.Abs(r-got[it]) > 1e-6*math.Abs(r) {
			t.Errorf("iteration %d: loss_kd %v uninterrupted, %v resumed", it, r, got[it])
		}
	}
}

func readMetricsAll(t *testing.T, work string) string {
	raw, _ := os.ReadFile(filepath.Join(work, "metrics.jsonl"))
	return string(raw)
}

func kdLosses(t *testing.T, work string) map[int64]float64 {
	out := map[int64]float64{}
	for _, line := range strings.Split(readMetricsAll(t, work), "\n") {
		var m struct {
			Iter int64    `json:"iter"`
			KD   *float64 `json:"loss_kd"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.KD != nil {
			out[m.Iter] = *m.KD
		}
	}
	return out
}
