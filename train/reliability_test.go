package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/layers"
)

// errCrash stops a checkpoint write after a step, leaving the files as a
// kill there would.
var errCrash = errors.New("simulated crash")

// saveCrashing runs SaveCheckpoint and stops it after step k (0: never);
// it reports whether the write was stopped.
func saveCrashing(t *testing.T, work, name string, reg *layers.Registry, st *State, updateLast bool, k int) (crashed bool) {
	t.Helper()
	faultHook = func(n int, what string) {
		if n == k {
			panic(errCrash)
		}
	}
	defer func() {
		faultHook = nil
		if r := recover(); r != nil {
			if r != errCrash {
				panic(r)
			}
			crashed = true
		}
	}()
	if _, err := SaveCheckpoint(work, name, reg, NewSGD(0.9, 0, false), st, updateLast); err != nil {
		t.Fatal(err)
	}
	return false
}

func biasOf(t *testing.T, dir string) float32 {
	t.Helper()
	reg := tinyReg()
	if _, err := LoadCheckpoint(dir, reg, NewSGD(0.9, 0, false)); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return reg.Get("a.bias").Data()[0]
}

// TestResaveCrashAtEveryStep: re-saving the checkpoint that last_checkpoint
// names (model_final after a resume), stopped after every step of either
// protocol, leaves a work dir whose pointer resolves (read-only) to a
// complete checkpoint, old or new, and Recover then keeps a complete copy
// under the name and removes the leftovers (issue 12: a kill between the
// two renames left the pointer naming nothing, and the next start deleted
// the only complete copy).
func TestResaveCrashAtEveryStep(t *testing.T) {
	for _, portable := range []bool{false, true} {
		forcePortable = portable
		for k := 1; ; k++ {
			work := t.TempDir()
			reg := tinyReg()
			reg.Get("a.bias").Data()[0] = 1
			if _, err := SaveCheckpoint(work, "model_final", reg, nil, &State{Iter: 10}, true); err != nil {
				t.Fatal(err)
			}
			reg.Get("a.bias").Data()[0] = 2
			crashed := saveCrashing(t, work, "model_final", reg, &State{Iter: 10}, true, k)
			label := fmt.Sprintf("portable=%v, stopped after step %d", portable, k)
			dir, err := ResolveCheckpoint(work)
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			if b := biasOf(t, dir); b != 1 && b != 2 {
				t.Fatalf("%s: checkpoint holds %v", label, b)
			}
			if err := Recover(work); err != nil {
				t.Fatalf("%s: recover: %v", label, err)
			}
			dir, err = ResolveCheckpoint(work)
			if err != nil || filepath.Base(dir) != "model_final" {
				t.Fatalf("%s: after recovery %q, %v", label, dir, err)
			}
			if b := biasOf(t, dir); b != 1 && b != 2 {
				t.Fatalf("%s: checkpoint holds %v", label, b)
			}
			if left, _ := filepath.Glob(filepath.Join(work, "checkpoints", ".*")); len(left) != 0 {
				t.Errorf("%s: leftovers %v", label, left)
			}
			if !crashed {
				if k < 8 {
					t.Errorf("portable=%v: the protocol has only %d steps", portable, k-1)
				}
				if b := biasOf(t, dir); b != 2 {
					t.Errorf("%s: complete write holds %v", label, b)
				}
				break
			}
		}
	}
	forcePortable = false
}

// TestRecoverFormat1Leftovers: the state the previous protocol left when
// killed between its two renames (final renamed to final.old, the complete
// temp dir not yet renamed, the pointer naming final) is recovered: the
// complete final.old comes back and resume works (issue 12: the temp dir
// was deleted and --resume failed).
func TestRecoverFormat1Leftovers(t *testing.T) {
	work := t.TempDir()
	reg := tinyReg()
	if _, err := SaveCheckpoint(work, "model_final", reg, nil, &State{Iter: 10}, true); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(work, "checkpoints")
	if err := os.Rename(filepath.Join(root, "model_final"), filepath.Join(root, "model_final.old")); err != nil {
		t.Fatal(err)
	}
	if _, err := SaveCheckpoint(work, "iter_0000001", reg, nil, &State{Iter: 1}, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "iter_0000001"), filepath.Join(root, ".tmp-model_final-123")); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveCheckpoint(work); err != nil {
		t.Errorf("read-only resolve of the torn state: %v", err)
	}
	if err := Recover(work); err != nil {
		t.Fatal(err)
	}
	dir, err := ResolveCheckpoint(work)
	if err != nil || filepath.Base(dir) != "model_final" {
		t.Fatalf("after recovery: %q, %v", dir, err)
	}
	if _, err := LoadCheckpoint(dir, tinyReg(), nil); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointChecksum: a bit flipped in a checkpoint file after it was
// written is an error naming the file on load (issue 12: it resumed
// silently).
func TestCheckpointChecksum(t *testing.T) {
	work := t.TempDir()
	dir, err := SaveCheckpoint(work, "iter_0000003", tinyReg(), NewSGD(0.9, 0, false), &State{Iter: 3}, true)
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(mustRead(t, filepath.Join(dir, StateFile)), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.SHA256) != 2 || len(st.SHA256[ModelFile]) != 64 {
		t.Fatalf("state.json sums %v", st.SHA256)
	}
	p := filepath.Join(dir, ModelFile)
	b := mustRead(t, p)
	b[len(b)-3] ^= 0x10 // a bit of a weight: the file still parses
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadCheckpoint(dir, tinyReg(), NewSGD(0.9, 0, false))
	if err == nil || !strings.Contains(err.Error(), "model.safetensors is corrupt") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("bit-flipped checkpoint: %v", err)
	}
	if err := VerifyWeightsFile(p); err == nil {
		t.Error("VerifyWeightsFile passed a corrupt file")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
