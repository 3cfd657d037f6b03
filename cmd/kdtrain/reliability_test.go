package main

// Regression tests of issue 12 (reliability under faults and bad input)
// that need a real kdtrain process or its command line.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data/synth"
	"github.com/skd-go/skd/model/weights"
	"github.com/skd-go/skd/train"
)

// runCmd runs kdtrain in a child process and returns its exit code and
// combined output.
func runCmd(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	c := command(args...)
	c.Env = append(c.Env, env...)
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		if ee.ExitCode() < 0 { // killed by a signal
			return -1, string(out)
		}
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("kdtrain %v: %v", args, err)
	return 0, ""
}

// runBounded runs kdtrain with a deadline, keeping the first 64 KiB of its
// output and counting its lines (a runaway log must not fill memory).
func runBounded(t *testing.T, deadline time.Duration, args ...string) (code int, head string, lines int) {
	t.Helper()
	c := command(args...)
	w := &boundedWriter{}
	c.Stdout, c.Stderr = w, w
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(deadline, func() { c.Process.Kill() })
	err := c.Wait()
	if !timer.Stop() {
		t.Errorf("kdtrain %v: still running after %v (killed)", args, deadline)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, w.head.String(), w.lines
}

type boundedWriter struct {
	mu    sync.Mutex
	head  bytes.Buffer
	lines int
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := 64<<10 - w.head.Len(); n > 0 {
		w.head.Write(p[:min(n, len(p))])
	}
	w.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

func fileBytes(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExitCodes is the README's exit-code promise over kdtrain's bad
// flags, arguments, configuration and input: all exit 2 with a message
// naming the problem (issue 12: "unknown command" used to exit 1, and
// "--resume PATH" was taken for a command).
func TestExitCodes(t *testing.T) {
	cfg, work := tinySetup(t, "")
	empty := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no flags", []string{}, "--config is required"},
		{"unknown flag", []string{"--config", cfg, "--bogus"}, "unknown flag"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"positional after flags", []string{"--config", cfg, "extra"}, `unknown command "extra"`},
		{"resume and weights", []string{"--config", cfg, "--resume", "--weights", "w.pth"}, "exclude each other"},
		{"resume and force", []string{"--config", cfg, "--resume", "--force"}, "exclude each other"},
		{"resume path missing", []string{"--config", cfg, "--resume", filepath.Join(empty, "nope")}, "nope"},
		{"resume empty dir", []string{"--config", cfg, "--resume", empty}, "no last_checkpoint"},
		{"missing config", []string{"--config", filepath.Join(empty, "c.yaml")}, "c.yaml"},
		{"unknown key", []string{"--config", cfg, "--set", "solver.bas_lr=1"}, `did you mean "solver.base_lr"`},
		{"unknown section from --set", []string{"--config", cfg, "--set", "foo.bar=1"}, "--set: foo: unknown key"},
		{"NaN lr", []string{"--config", cfg, "--set", "solver.base_lr=.nan"}, "solver.base_lr is NaN"},
		{"Inf lr", []string{"--config", cfg, "--set", "solver.base_lr=.inf"}, "solver.base_lr is +Inf"},
		{"negative warmup", []string{"--config", cfg, "--set", "solver.warmup_iters=-5"}, "solver.warmup_iters is -5"},
		{"zero batch", []string{"--config", cfg, "--set", "solver.ims_per_batch=0"}, "solver.ims_per_batch is 0"},
		{"zero min size", []string{"--config", cfg, "--set", "input.min_size=[0]"}, "input.min_size[0] is 0"},
		{"zero size divisible", []string{"--config", cfg, "--set", "input.size_divisible=0"}, "input.size_divisible is 0"},
		{"flip prob", []string{"--config", cfg, "--set", "input.flip_prob=1.5"}, "input.flip_prob is 1.5"},
		{"bad train ann", []string{"--config", cfg, "--set", "data.train.ann=/nonexistent/ann.json"}, "/nonexistent/ann.json"},
		{"train images elsewhere", []string{"--config", cfg, "--set", "data.train.images=" + empty}, "check data.train.images"},
		{"bad val ann", []string{"--config", cfg, "--set", "data.val.ann=/nonexistent/val.json"}, "/nonexistent/val.json"},
		{"val images elsewhere", []string{"--config", cfg, "--set", "data.val.images=" + empty}, "check data.val.images"},
		{"plot without dir", []string{"plot"}, "one argument"},
		{"plot of nothing", []string{"plot", empty}, "metrics.jsonl"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != 2 {
			t.Errorf("%s: %v: exit code %d, want 2 (stderr %q)", c.name, c.args, code, errb.String())
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%s: stderr %q does not mention %q", c.name, errb.String(), c.want)
		}
		if strings.Contains(errb.String(), "goroutine ") {
			t.Errorf("%s: panic trace", c.name)
		}
	}
	// none of these started a run
	if _, err := os.Stat(filepath.Join(work, "metrics.jsonl")); err == nil {
		t.Errorf("a refused invocation logged metrics")
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--force") {
		t.Errorf("--help: exit %d, output %q", code, out.String())
	}
}

// TestResumeWithSpace: "--resume PATH" as docs/TRAINING.md writes it
// resumes from PATH (issue 12: it was taken for a command).
func TestResumeWithSpace(t *testing.T) {
	cfg, work := tinySetup(t, "")
	if code, out := runCmd(t, nil, "--config", cfg, "--set", "solver.max_iter=6"); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	ck := filepath.Join(work, "checkpoints", "iter_0000003")
	code, out := runCmd(t, nil, "--config", cfg, "--set", "solver.max_iter=6", "--resume", ck)
	if code != 0 || !strings.Contains(out, "resumed") || !strings.Contains(out, "iter_0000003") {
		t.Fatalf("--resume PATH: exit %d\n%s", code, out)
	}
	if m := readMetrics(t, work); len(m) != 6 {
		t.Errorf("after resuming from iteration 3, %d iterations logged, want 6", len(m))
	}
}

// TestFreshRunRefused: a run without --resume in a work dir holding a
// finished run is refused (exit 2) naming --resume and --force, and leaves
// model_final and metrics.jsonl untouched; --force moves the old run to
// WORK.old-TIMESTAMP and starts afresh (issue 12: it silently overwrote
// model_final and appended a second series).
func TestFreshRunRefused(t *testing.T) {
	cfg, work := tinySetup(t, "")
	if code, out := runCmd(t, nil, "--config", cfg, "--set", "solver.max_iter=3"); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	final := filepath.Join(work, "checkpoints", "model_final", train.ModelFile)
	before, metrics := fileBytes(t, final), fileBytes(t, filepath.Join(work, "metrics.jsonl"))
	code, out := runCmd(t, nil, "--config", cfg, "--set", "solver.max_iter=3", "--set", "train.seed=9")
	if code != 2 || !strings.Contains(out, "already holds a run") || !strings.Contains(out, "--resume") || !strings.Contains(out, "--force") {
		t.Fatalf("fresh run over a finished one: exit %d\n%s", code, out)
	}
	if !bytes.Equal(before, fileBytes(t, final)) || !bytes.Equal(metrics, fileBytes(t, filepath.Join(work, "metrics.jsonl"))) {
		t.Fatal("the refused run changed model_final or metrics.jsonl")
	}
	code, out = runCmd(t, nil, "--config", cfg, "--set", "solver.max_iter=3", "--set", "train.seed=9", "--force")
	if code != 0 {
		t.Fatalf("--force: exit %d\n%s", code, out)
	}
	aside, _ := filepath.Glob(work + ".old-*")
	if len(aside) != 1 {
		t.Fatalf("--force left %v beside the work dir", aside)
	}
	if !bytes.Equal(before, fileBytes(t, filepath.Join(aside[0], "checkpoints", "model_final", train.ModelFile))) ||
		!bytes.Equal(metrics, fileBytes(t, filepath.Join(aside[0], "metrics.jsonl"))) {
		t.Error("the run moved aside is not the previous run")
	}
	if m := readMetrics(t, work); len(m) != 3 {
		t.Errorf("new run logged %d iterations, want 3", len(m))
	}
}

// TestWorkDirLock: a second run on a work dir in use is refused, naming
// the pid of the run holding it (issue 12: two runs interleaved their
// metrics and checkpoints).
func TestWorkDirLock(t *testing.T) {
	cfgPath, work := tinySetup(t, "")
	cfg, resolved, err := config.LoadFile(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	holder, err := train.New(train.Options{Config: cfg, Resolved: resolved, Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	code, out := runCmd(t, nil, "--config", cfgPath)
	if code != 2 || !strings.Contains(out, "in use by another run") || !strings.Contains(out, "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second run on a locked work dir: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, nil, "--config", cfgPath, "--resume")
	if code != 2 || !strings.Contains(out, "in use") {
		t.Errorf("--resume on a locked work dir: exit %d\n%s", code, out)
	}
	holder.Close()
	if _, err := os.Stat(filepath.Join(work, "metrics.jsonl")); err == nil {
		t.Error("a refused run wrote metrics")
	}
	if code, out := runCmd(t, nil, "--config", cfgPath, "--set", "solver.max_iter=1"); code != 0 {
		t.Errorf("after the lock was released: exit %d\n%s", code, out)
	}
}

// TestFailedResumeKeepsConfig: a --resume that fails (here: a model that
// does not fit the checkpoint) leaves WORK_DIR/config.yaml as it was, so
// kdeval --config WORK_DIR/config.yaml still works (issue 12).
func TestFailedResumeKeepsConfig(t *testing.T) {
	cfg, work := tinySetup(t, "")
	if code, out := runCmd(t, nil, "--config", cfg, "--set", "solver.max_iter=3"); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	saved := fileBytes(t, filepath.Join(work, "config.yaml"))
	code, out := runCmd(t, nil, "--config", cfg, "--set", "solver.max_iter=6", "--set", "model.fpn_channels=8", "--resume")
	if code == 0 || !strings.Contains(out, "fpn") {
		t.Fatalf("resume with another model: exit %d\n%s", code, out)
	}
	if !bytes.Equal(saved, fileBytes(t, filepath.Join(work, "config.yaml"))) {
		t.Error("a failed --resume rewrote config.yaml")
	}
	if _, _, err := config.LoadFile(filepath.Join(work, "config.yaml"), nil); err != nil {
		t.Error(err)
	}
}

// TestUnreadableTrainingImages: when no training image can be read,
// training stops at once with exit 2 and an error naming examples, and
// logs each unreadable image at most once (issue 12: it never reached
// iteration 1 and wrote a gigabyte of warnings).
func TestUnreadableTrainingImages(t *testing.T) {
	cfg, work := tinySetup(t, "")
	bad := t.TempDir()
	ents, err := os.ReadDir(synth.TrainImages(synthDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.WriteFile(filepath.Join(bad, e.Name()), []byte("not a JPEG"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// with the default configuration: a clear error, not an endless flood
	// of warnings (the deadline only turns such a hang into a failure)
	code, head, lines := runBounded(t, 2*time.Minute, "--config", cfg, "--set", "data.train.images="+bad)
	if code != 2 || !strings.Contains(head, "images cannot be read") || !strings.Contains(head, "e.g. decoding image "+bad) {
		t.Fatalf("all images corrupt: exit %d, %d lines, beginning\n%s", code, lines, head)
	}
	if lines > len(ents)+20 {
		t.Errorf("%d lines of output for %d unreadable images", lines, len(ents))
	}
	code, out := runCmd(t, nil, "--config", cfg, "--set", "data.train.images="+bad, "--set", "data.max_unreadable=1")
	if code != 2 || !strings.Contains(out, "none of the 8 images can be read") || strings.Count(out, "skipping unreadable image") > len(ents) {
		t.Fatalf("all images corrupt, data.max_unreadable=1: exit %d\n%s", code, out)
	}
	// one corrupt image of 8 is over the default bound (1%) but within 0.2
	work2 := work + "2"
	one := t.TempDir()
	for i, e := range ents {
		b := fileBytes(t, filepath.Join(synth.TrainImages(synthDir), e.Name()))
		if i == 0 {
			b = []byte("corrupt")
		}
		os.WriteFile(filepath.Join(one, e.Name()), b, 0o644)
	}
	code, out = runCmd(t, nil, "--config", cfg, "--set", "data.train.images="+one, "--set", "train.work_dir="+work2)
	if code != 2 || !strings.Contains(out, "more than the allowed fraction 0.01") {
		t.Errorf("one corrupt image, default bound: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, nil, "--config", cfg, "--set", "data.train.images="+one, "--set", "train.work_dir="+work2,
		"--set", "data.max_unreadable=0.2", "--set", "solver.max_iter=8", "--force")
	if code != 0 || strings.Count(out, "skipping unreadable image") != 1 {
		t.Errorf("one corrupt image within the bound: exit %d, want 0 and one skip line\n%s", code, out)
	}
}

// TestNaNStopNamesGoodCheckpoint: after a non-finite loss the run names a
// last good checkpoint whose weights are finite and gave a finite loss,
// last_checkpoint names it, and resuming from it with a sane learning rate
// trains on (issue 12: the named checkpoint could hold exploded weights
// and fail again at once).
func TestNaNStopNamesGoodCheckpoint(t *testing.T) {
	cfg, work := tinySetup(t, "")
	code, out := runCmd(t, nil, "--config", cfg, "--set", "solver.base_lr=1e3", "--set", "solver.warmup_iters=0",
		"--set", "solver.max_iter=30", "--set", "solver.clip_grad_norm=0", "--set", "train.checkpoint_period=1")
	if code != 1 || !strings.Contains(out, "non-finite") {
		t.Fatalf("want a non-finite stop with exit 1, got %d\n%s", code, out)
	}
	i := strings.Index(out, "last good checkpoint: ")
	if i < 0 {
		t.Fatalf("no last good checkpoint named:\n%s", out)
	}
	good := strings.Fields(out[i+len("last good checkpoint: "):])[0]
	t.Logf("stop message: %s", out[strings.Index(out, "non-finite"):])
	if good == "none" {
		t.Fatalf("no good checkpoint although one was saved every iteration:\n%s", out)
	}
	if dir, err := train.ResolveCheckpoint(work); err != nil || dir != good {
		t.Errorf("last_checkpoint names %q (%v), the message %q", dir, err, good)
	}
	sd, _, err := weights.LoadSafetensors(filepath.Join(good, train.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sd {
		for _, x := range v.Data {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("the last good checkpoint holds %v in %s", x, k)
			}
		}
	}
	st := stateIter(t, good)
	code, out = runCmd(t, nil, "--config", cfg, "--set", "solver.base_lr=1e-4", "--set", "solver.warmup_iters=0",
		"--set", fmt.Sprintf("solver.max_iter=%d", st+2), "--set", "train.checkpoint_period=1", "--resume")
	if code != 0 {
		t.Errorf("resuming from the last good checkpoint with a sane learning rate: exit %d\n%s", code, out)
	}
}

func stateIter(t *testing.T, dir string) int64 {
	t.Helper()
	var st train.State
	if err := json.Unmarshal(fileBytes(t, filepath.Join(dir, train.StateFile)), &st); err != nil {
		t.Fatal(err)
	}
	return st.Iter
}

// TestFailedFinalEvaluationKeepsFinal: when the final evaluation fails,
// model_final is already written (issue 12: the last iterations were
// lost), and --resume redoes the evaluation.
func TestFailedFinalEvaluationKeepsFinal(t *testing.T) {
	cfgPath, work := tinySetup(t, "")
	cfg, resolved, err := config.LoadFile(cfgPath, []string{"solver.max_iter=4"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.New(train.Options{Config: cfg, Resolved: resolved, Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	// the val split passed the start checks; it breaks during training
	bad := filepath.Join(t.TempDir(), "val.json")
	os.WriteFile(bad, []byte(`{"images": [`), 0o644)
	tr.ValAnn = bad
	err = tr.Run()
	if err == nil || !strings.Contains(err.Error(), "evaluation at iteration 4") {
		t.Fatalf("run with a broken val split: %v", err)
	}
	if it := stateIter(t, filepath.Join(work, "checkpoints", "model_final")); it != 4 {
		t.Errorf("model_final holds iteration %d, want 4", it)
	}
	if dir, err := train.ResolveCheckpoint(work); err != nil || filepath.Base(dir) != "model_final" {
		t.Errorf("last_checkpoint: %q %v", dir, err)
	}
	code, out := runCmd(t, nil, "--config", cfgPath, "--set", "solver.max_iter=4", "--resume")
	if code != 0 || !strings.Contains(out, "eval iter 4") {
		t.Errorf("--resume after a failed final evaluation: exit %d\n%s", code, out)
	}
}

// TestValSetCheckedAtStart: a broken val split is an error (exit 2)
// before the first iteration, not after the last (issue 12).
func TestValSetCheckedAtStart(t *testing.T) {
	cfg, work := tinySetup(t, "")
	badAnn := filepath.Join(t.TempDir(), "val.json")
	os.WriteFile(badAnn, []byte(`{"images": [{"id": 1, "file_name": "a.jpg", "width": 10}]`), 0o644)
	for _, c := range []struct{ set, want string }{
		{"data.val.ann=" + badAnn, badAnn},
		{"data.val.images=" + t.TempDir(), "check data.val.images"},
		{"model.roi_heads.num_classes=9", "val split"},
	} {
		code, out := runCmd(t, nil, "--config", cfg, "--set", c.set)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("--set %s: exit %d, want 2 and %q\n%s", c.set, code, c.want, out)
		}
		if raw, _ := os.ReadFile(filepath.Join(work, "metrics.jsonl")); len(raw) != 0 {
			t.Fatalf("--set %s: iterations ran before the val split was checked", c.set)
		}
	}
}
