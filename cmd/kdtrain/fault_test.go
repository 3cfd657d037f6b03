package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/model/weights"
	"github.com/skd-go/skd/train"
)

// copyTree copies a work dir (regular files and directories).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, in); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sameRun checks that work logged the losses of ref at every iteration and
// ended with the same model_final weights.
func sameRun(t *testing.T, label string, ref map[int64]metric, refFinal weights.StateDict, work string) {
	t.Helper()
	got := readMetrics(t, work)
	if len(got) != len(ref) {
		t.Errorf("%s: %d iterations logged, uninterrupted %d", label, len(got), len(ref))
		return
	}
	for it, r := range ref {
		g := got[it]
		for _, pair := range [][2]float64{{*r.Total, *g.Total}, {r.Obj, g.Obj}, {r.Cls, g.Cls}, {r.BoxReg, g.BoxReg}, {r.RPNBox, g.RPNBox}} {
			if math.Abs(pair[0]-pair[1]) > 1e-6*math.Max(math.Abs(pair[0]), 1e-12) {
				t.Errorf("%s: iteration %d: uninterrupted %+v, resumed %+v", label, it, r, g)
				return
			}
		}
	}
	sd, _, err := weights.LoadSafetensors(filepath.Join(work, "checkpoints", "model_final", train.ModelFile))
	if err != nil {
		t.Errorf("%s: %v", label, err)
		return
	}
	for k, a := range refFinal {
		b := sd[k]
		if b == nil || len(b.Data) != len(a.Data) {
			t.Errorf("%s: %s missing or reshaped", label, k)
			return
		}
		for i := range a.Data {
			if math.Abs(float64(a.Data[i]-b.Data[i])) > 1e-5*(1+math.Abs(float64(a.Data[i]))) {
				t.Errorf("%s: model_final %s[%d]: uninterrupted %v, resumed %v", label, k, i, a.Data[i], b.Data[i])
				return
			}
		}
	}
}

// completeNow checks the state a kill left, before any recovery: the
// checkpoint that last_checkpoint names (or, between the two renames of
// the portable protocol, its .old- copy) is complete and its files match
// the SHA-256 sums of its state.json.
func completeNow(t *testing.T, label, work string) {
	t.Helper()
	dir, err := train.ResolveCheckpoint(work)
	if err != nil {
		if _, e := os.Stat(filepath.Join(work, train.LastPointer)); os.IsNotExist(e) {
			return // killed before the first checkpoint pointer: a fresh start
		}
		t.Errorf("%s: after the kill: %v", label, err)
		return
	}
	var st train.State
	raw, err := os.ReadFile(filepath.Join(dir, train.StateFile))
	if err == nil {
		err = json.Unmarshal(raw, &st)
	}
	if err == nil {
		err = train.VerifyCheckpoint(dir, &st)
	}
	if err == nil && len(st.SHA256) != 2 {
		err = fmt.Errorf("state.json records %d checksums", len(st.SHA256))
	}
	if err != nil {
		t.Errorf("%s: after the kill, last_checkpoint names an incomplete checkpoint %s: %v", label, dir, err)
	}
}

// TestCheckpointKillAtEveryStep is the fault-injection test of the
// checkpoint protocol (docs/TRAINING.md): kdtrain SIGKILLs itself
// (train.FaultEnv) after each step (every write+fsync, rename, fsync and
// removal) of a checkpoint write, for a new name, for names written again
// after a resume (an iteration checkpoint, model_final, best), with the
// exchange protocol and with the portable one. After every kill the
// pointer names a complete checkpoint, and --resume finishes with the
// losses and final weights of an uninterrupted run. -short runs the three
// code paths (new name, exchange, portable replacement); the full run adds
// the other re-saved names.
func TestCheckpointKillAtEveryStep(t *testing.T) {
	cfg, refWork := tinySetup(t, "")
	if code, out := runCmd(t, nil, "--config", cfg); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, out)
	}
	ref := readMetrics(t, refWork)
	if len(ref) != 10 {
		t.Fatalf("uninterrupted run logged %d iterations", len(ref))
	}
	refFinal, _, err := weights.LoadSafetensors(filepath.Join(refWork, "checkpoints", "model_final", train.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	scenarios := []struct {
		name     string // checkpoint whose write is killed
		resaved  bool   // written again after resuming a finished run from iter_0000006
		portable bool
		steps    int  // steps of the protocol
		long     bool // same code path as an earlier scenario: not in -short
	}{
		{"iter_0000006", false, false, 10, false},
		{"model_final", true, false, 11, false},
		{"model_final", true, true, 12, false},
		{"iter_0000009", true, false, 11, true},
		{"best", true, false, 8, true},
		{"best", true, true, 9, true},
	}
	base := t.TempDir()
	for si, sc := range scenarios {
		if sc.long && testing.Short() {
			continue
		}
		mode := ""
		if sc.portable {
			mode = ",portable"
		}
		for k := 1; ; k++ {
			label := fmt.Sprintf("%s%s killed after step %d", sc.name, mode, k)
			work := filepath.Join(base, fmt.Sprintf("s%d-k%d", si, k))
			args := []string{"--config", cfg, "--work-dir", work}
			if sc.resaved {
				copyTree(t, refWork, work)
				args = append(args, "--resume", filepath.Join(work, "checkpoints", "iter_0000006"))
			}
			code, out := runCmd(t, []string{train.FaultEnv + "=" + sc.name + fmt.Sprintf(":%d", k) + mode}, args...)
			if code == 0 {
				if k-1 != sc.steps {
					t.Errorf("%s%s: the write has %d steps, want %d", sc.name, mode, k-1, sc.steps)
				}
				sameRun(t, label+" (not killed)", ref, refFinal, work)
				break
			}
			if code != -1 || !strings.Contains(out, "killing the process after step") {
				t.Fatalf("%s: exit %d, want a SIGKILL\n%s", label, code, out)
			}
			completeNow(t, label, work)
			code, out = runCmd(t, nil, "--config", cfg, "--work-dir", work, "--resume")
			if code != 0 {
				t.Errorf("%s: --resume: exit %d\n%s", label, code, out)
				continue
			}
			sameRun(t, label, ref, refFinal, work)
			if left, _ := filepath.Glob(filepath.Join(work, "checkpoints", ".*")); len(left) != 0 {
				t.Errorf("%s: leftovers after the resumed run: %v", label, left)
			}
			if k > 20 {
				t.Fatalf("%s: the protocol never ends", label)
			}
		}
	}
}
