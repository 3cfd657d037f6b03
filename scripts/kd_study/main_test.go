package main

import (
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSchedule(t *testing.T) {
	got := strings.Join(schedule(2400), " ")
	want := "solver.max_iter=2400 solver.steps=[1600,2133] solver.warmup_iters=100 train.eval_period=300 train.checkpoint_period=300"
	if got != want {
		t.Errorf("schedule(2400) = %s, want %s", got, want)
	}
	// Tiny budgets keep increasing steps.
	if got := strings.Join(schedule(2), " "); !strings.Contains(got, "solver.steps=[1,2]") {
		t.Errorf("schedule(2) = %s", got)
	}
}

func TestPooledStdAndConvergence(t *testing.T) {
	// sample variances 1 and 4, 3 values each: pooled variance 2.5
	if got := pooledStd([]float64{1, 2, 3}, []float64{2, 4, 6}); math.Abs(got-math.Sqrt(2.5)) > 1e-12 {
		t.Errorf("pooled std %v", got)
	}
	s := &study{o: options{converge: 0.01}, results: map[string]*Result{}}
	ev := func(aps ...float64) []map[string]float64 {
		var out []map[string]float64
		for i, a := range aps {
			out = append(out, map[string]float64{"iter": float64(i + 1), "AP": a})
		}
		return out
	}
	s.results["a"] = &Result{run: run{Name: "a"}, Evals: ev(0.1, 0.30, 0.312)}
	s.results["b"] = &Result{run: run{Name: "b"}, Evals: ev(0.1, 0.32, 0.314)}
	// mean 0.310 -> 0.313: converged
	if d, ok := s.converged([]run{{Name: "a"}, {Name: "b"}}); !ok || math.Abs(d-0.003) > 1e-12 {
		t.Errorf("converged: %v %v", d, ok)
	}
	s.results["b"].Evals = ev(0.1, 0.30, 0.33)
	if _, ok := s.converged([]run{{Name: "a"}, {Name: "b"}}); ok {
		t.Error("a change of 0.021 counted as converged")
	}
	if _, ok := s.converged([]run{{Name: "a"}, {Name: "missing"}}); ok {
		t.Error("a missing run counted as converged")
	}
}

func TestReportFromResults(t *testing.T) {
	dir := t.TempDir()
	s := &study{o: options{results: dir, minGap: 0.1, progressOut: io.Discard}, results: map[string]*Result{}}
	add := func(name, phase, method, seed string, w float64, aps ...float64) {
		r := &Result{run: run{Name: name, Phase: phase, Method: method, Seed: seed, Weight: w, Budget: 100, Split: "val"}, SecPerIter: 1}
		for i, a := range aps {
			r.Evals = append(r.Evals, map[string]float64{"iter": float64(50 * (i + 1)), "AP": a, "APl": -1})
		}
		r.Final = r.Evals[len(r.Evals)-1]
		s.results[name] = r
	}
	add("teacher", "teacher", "teacher", "1", 0, 0.5, 0.6)
	add("converge/none_s1", "converge", "none", "1", 0, 0.2, 0.30)
	add("converge/none_s2", "converge", "none", "2", 0, 0.2, 0.32)
	add("main/ssim_s1", "main", "ssim", "1", 2, 0.2, 0.40)
	add("main/ssim_s2", "main", "ssim", "2", 2, 0.2, 0.42)
	s.results["main/ssim_s2"].SecPerIter = 1.5
	md, err := s.reportMarkdown()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| none | - | 2 | 31.0 ± 1.4 |", "| ssim | 2 | 2 | 41.0 ± 1.4 |", "40.0 (s1), 42.0 (s2)", "| 1.250 | 1.25x |",
		"| none | +10.00 | 1.41 | +7.07 | true |", "| n/a |", "Teacher - no-KD student: 29.0 AP", "| 100 | 2 | 20.0 -> 31.0 | +11.00 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ap_curves.png")); err != nil {
		t.Error(err)
	}
}

// TestSmoke runs the whole plan on a tiny budget (about 30 s on 2 cores).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("trains ~40 tiny runs; go run ./scripts/kd_study -smoke")
	}
	c := exec.Command("go", "run", "./scripts/kd_study", "-smoke")
	c.Dir = "../.."
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kd_study smoke: the whole plan ran") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestQuickstartSmoke runs scripts/quickstart_hard.sh on tiny models: teacher
// trained, shipped (F16 + SHA-256) and verified, two seeds of each
// student, the table with the spread over seeds.
func TestQuickstartSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the commands and trains tiny runs; QS_SMOKE=1 bash scripts/quickstart_hard.sh")
	}
	c := exec.Command("bash", "scripts/quickstart_hard.sh")
	c.Dir = "../.."
	c.Env = append(os.Environ(), "QS_SMOKE=1")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"SHA-256", "teacher R34 x0.5", "student R18 x0.25, no KD", "student R18 x0.25, SSIM KD", "±", "over 2 seeds (1 2)"} {
		if !strings.Contains(string(out), want) && !(want == "SHA-256" && strings.Contains(string(out), "teacher.safetensors: ")) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
