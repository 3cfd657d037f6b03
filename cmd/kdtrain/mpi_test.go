//go:build mpi

package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skd-go/skd/data/synth"
)

// The tests below start this test binary as kdtrain under mpirun (built
// with -tags mpi; CI: .ci/run). They compare real multi-process runs with
// one-process runs of the same binary.

func mpirun(t *testing.T, np int, args ...string) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not on PATH")
	}
	a := append(mpiFlags(), "-np", strconv.Itoa(np), os.Args[0])
	return exec.Command("mpirun", append(a, args...)...)
}

// mpiFlags: gradient buckets of 16 KB, so that every multi-rank test
// reduces many buckets during the backward pass (the tiny detector's
// gradients would fit one 25 MB bucket).
func mpiFlags() []string {
	return []string{"--oversubscribe", "--allow-run-as-root", "-x", "KDTRAIN_AS_MAIN=1", "-x", "GOMAXPROCS=1", "-x", "SKD_DDP_BUCKET_BYTES=16384"}
}

func runOK(t *testing.T, c *exec.Cmd) string {
	t.Helper()
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, out)
	}
	return string(out)
}

// TestMPIEqualsOneProcess: mpirun -np 2 with 2 images per rank equals one
// process with 4 images per batch (losses 1e-5 relative for 10
// iterations, final weights 1e-5) with FrozenBN and SyncBN; per-rank BN
// trains and differs.
func TestMPIEqualsOneProcess(t *testing.T) {
	for _, norm := range []string{"FrozenBN", "SyncBN", "BN"} {
		t.Run(norm, func(t *testing.T) {
			sets := append([]string{"model.backbone.norm=" + norm, "model.backbone.train_bn_affine=true"}, equivSets...)
			var flags []string
			for _, s := range sets {
				flags = append(flags, "--set", s)
			}
			cfg1, work1 := tinySetup(t, "")
			runOK(t, command(append([]string{"--config", cfg1}, flags...)...))
			cfg2, work2 := tinySetup(t, "")
			out := runOK(t, mpirun(t, 2, append([]string{"--config", cfg2}, flags...)...))
			if !strings.Contains(out, "ranks=2") {
				t.Fatalf("the run did not say it was a 2-rank run:\n%s", out)
			}
			if norm == "BN" {
				a, b := readMetrics(t, work1), readMetrics(t, work2)
				if len(b) != 10 || math.Abs(*a[1].Total-*b[1].Total) < 1e-6**a[1].Total {
					t.Fatalf("per-rank BN: %d iterations, iteration 1 %v vs one process %v", len(b), *b[1].Total, *a[1].Total)
				}
				return
			}
			worst := compareRuns(t, work1, work2, 1e-5, 1e-5)
			t.Logf("%s: largest relative loss difference %.2g", norm, worst)
		})
	}
}

// TestMPIOverlapIsBitIdentical: with real MPI ranks (every collective on
// the communication thread, bucket allreduces in flight while SyncBN
// reduces its statistics), the overlapped run equals, bit for bit, the one
// that reduces the gradients after the backward pass.
func TestMPIOverlapIsBitIdentical(t *testing.T) {
	sets := append([]string{"model.backbone.norm=SyncBN", "model.backbone.train_bn_affine=true"}, equivSets...)
	var flags []string
	for _, s := range sets {
		flags = append(flags, "--set", s)
	}
	cfg1, work1 := tinySetup(t, "")
	c := mpirun(t, 2, append([]string{"--config", cfg1}, flags...)...)
	c.Args = append(c.Args[:1], append([]string{"-x", "SKD_DDP_OVERLAP=0"}, c.Args[1:]...)...)
	runOK(t, c)
	cfg2, work2 := tinySetup(t, "")
	runOK(t, mpirun(t, 2, append([]string{"--config", cfg2}, flags...)...))
	compareRuns(t, work1, work2, 0, 0)
	m := readMetrics(t, work2)[10]
	if m.CommTime == nil || m.CommExposed == nil || *m.CommExposed > *m.CommTime {
		t.Fatalf("overlapped run's communication record: %+v", m)
	}
	t.Logf("overlapped: comm_time %.3g s, comm_exposed %.3g s, comm_wait %.3g s per iteration", *m.CommTime, *m.CommExposed, *m.CommWait)
}

// TestMPIEvaluation: 2 ranks evaluating their shards of the val split give
// the 12 COCO numbers of one process on the same weights (a one-process
// run's final checkpoint, re-evaluated by a 2-rank --resume).
func TestMPIEvaluation(t *testing.T) {
	cfg, work := tinySetup(t, "")
	runOK(t, command("--config", cfg, "--set", "solver.max_iter=4"))
	want := lastEval(t, work)
	copyDir(t, work, work+"-2")
	os.Remove(filepath.Join(work+"-2", "metrics.jsonl"))
	runOK(t, mpirun(t, 2, "--config", cfg, "--set", "solver.max_iter=4", "--work-dir", work+"-2", "--resume"))
	got := lastEval(t, work+"-2")
	if got != want {
		t.Fatalf("2-rank evaluation %v, one process %v", got, want)
	}
	if want[0] < 0 {
		t.Fatalf("no AP computed: %v", want)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// rankPIDs returns the pids of mpirun's rank processes by rank.
func rankPIDs(t *testing.T, mpirunPID int) map[int]int {
	out := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(mpirunPID) {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		for _, kv := range bytes.Split(env, []byte{0}) {
			if r, ok := strings.CutPrefix(string(kv), "OMPI_COMM_WORLD_RANK="); ok {
				n, _ := strconv.Atoi(r)
				out[n] = pid
			}
		}
	}
	return out
}

// TestMPIDistillationResume: a 2-rank SSIM distillation run works, and one
// killed (SIGKILL of rank 1; mpirun ends the job) resumes from its last
// complete checkpoint and logs the losses of an uninterrupted 2-rank run.
func TestMPIDistillationResume(t *testing.T) {
	tcfg, twork := teacherRun(t)
	extra := fmt.Sprintf("teacher: {config: %s, weights: %s}\ndistill: {loss: ssim, weight: 2, adapter: true}\n", tcfg, twork)
	cfgA, workA := tinySetup(t, extra)
	runOK(t, mpirun(t, 2, "--config", cfgA, "--set", "solver.ims_per_batch=4"))
	if _, err := os.Stat(filepath.Join(workA, "student_final.safetensors")); err != nil {
		t.Fatalf("2-rank distillation wrote no student: %v", err)
	}
	cfgB, workB := tinySetup(t, extra)
	c := mpirun(t, 2, "--config", cfgB, "--set", "solver.ims_per_batch=4")
	var buf bytes.Buffer
	c.Stdout, c.Stderr = &buf, &buf
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(readMetricsAll(t, workB), `"iter":5,`) {
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("did not reach iteration 5:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pids := rankPIDs(t, c.Process.Pid)
	if pids[1] == 0 {
		c.Process.Kill()
		t.Fatalf("rank 1 not found among mpirun's children: %v", pids)
	}
	syscall.Kill(pids[1], syscall.SIGKILL)
	if err := c.Wait(); err == nil {
		t.Fatalf("mpirun exited 0 after a rank was killed:\n%s", buf.String())
	}
	runOK(t, mpirun(t, 2, "--config", cfgB, "--set", "solver.ims_per_batch=4", "--resume"))
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

// TestMPIBadInput: a world size that does not divide the batch, a rank
// that cannot read the dataset and ranks with different configurations
// give one clear error (from rank 0), a non-zero exit, and no work dir.
func TestMPIBadInput(t *testing.T) {
	cfg, work := tinySetup(t, "")
	check := func(name string, c *exec.Cmd, want string) {
		t.Helper()
		out, err := c.CombinedOutput()
		if err == nil {
			t.Errorf("%s: exit 0\n%s", name, out)
		}
		if n := strings.Count(string(out), want); n != 1 {
			t.Errorf("%s: %q printed %d times, want once:\n%s", name, want, n, out)
		}
		if _, err := os.Stat(work); err == nil {
			t.Errorf("%s: the work dir was created", name)
		}
		t.Logf("%s:\n%s", name, out)
	}
	check("batch", mpirun(t, 2, "--config", cfg, "--set", "solver.ims_per_batch=3"), "not divisible by the world size 2")

	// MPMD: rank 1 runs the same config with different flags
	// (-x applies to one app context: each gets its own)
	c := exec.Command("mpirun", append(mpiFlags(), "-np", "1", os.Args[0], "--config", cfg, ":",
		"-x", "KDTRAIN_AS_MAIN=1", "-np", "1", os.Args[0], "--config", cfg, "--set", "solver.base_lr=0.03")...)
	check("configs", c, "the ranks run different configurations")
	c = exec.Command("mpirun", append(mpiFlags(), "-np", "1", os.Args[0], "--config", cfg, ":",
		"-x", "KDTRAIN_AS_MAIN=1", "-x", "SKD_DDP_BUCKET_BYTES=8192", "-np", "1", os.Args[0], "--config", cfg)...)
	check("allreduce settings", c, "the ranks' gradient allreduce settings differ")

	// relative dataset paths; rank 1 starts in a directory without them
	dirA, dirB := t.TempDir(), t.TempDir()
	if err := os.Symlink(synthDir, filepath.Join(dirA, "set")); err != nil {
		t.Fatal(err)
	}
	rel := []string{"--config", cfg, "--set", "data.train.ann=set/annotations/" + filepath.Base(synth.TrainAnnotations(synthDir)),
		"--set", "data.train.images=set/train", "--set", "data.val.ann=set/annotations/" + filepath.Base(synth.ValAnnotations(synthDir)),
		"--set", "data.val.images=set/val"}
	a := append(mpiFlags(), "-np", "1", "--wdir", dirA, os.Args[0])
	a = append(append(a, rel...), ":", "-x", "KDTRAIN_AS_MAIN=1", "-x", "SKD_DDP_BUCKET_BYTES=16384", "-np", "1", "--wdir", dirB, os.Args[0])
	a = append(a, rel...)
	check("dataset", exec.Command("mpirun", a...), "rank 1: dataset path")
}
