package train

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/skd-go/skd/layers"
)

func tinyReg() *layers.Registry {
	reg := layers.NewRegistry()
	p := reg.Add("a.weight", 2, 3)
	for i := range p.Data() {
		p.Data()[i] = float32(i)
	}
	reg.Add("a.bias", 3)
	return reg
}

func TestCheckpointRoundTripAndPointer(t *testing.T) {
	work := t.TempDir()
	reg := tinyReg()
	opt := NewSGD(0.9, 0, false)
	opt.Buffers["a.weight"] = []float32{1, 2, 3, 4, 5, 6}
	st := &State{Iter: 7, SamplerRNG: []byte{1, 2, 3}, ConfigHash: "abc"}
	if _, err := SaveCheckpoint(work, "iter_0000007", reg, opt, st, true); err != nil {
		t.Fatal(err)
	}
	dir, err := ResolveCheckpoint(work)
	if err != nil || filepath.Base(dir) != "iter_0000007" {
		t.Fatalf("resolve: %v %v", dir, err)
	}
	reg2 := tinyReg()
	for i := range reg2.Get("a.weight").Data() {
		reg2.Get("a.weight").Data()[i] = 0
	}
	opt2 := NewSGD(0.9, 0, false)
	st2, err := LoadCheckpoint(dir, reg2, opt2)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Iter != 7 || string(st2.SamplerRNG) != string([]byte{1, 2, 3}) || reg2.Get("a.weight").Data()[5] != 5 || opt2.Buffers["a.weight"][5] != 6 {
		t.Fatalf("restored %+v %v %v", st2, reg2.Get("a.weight").Data(), opt2.Buffers)
	}
}

// A kill while a checkpoint is written leaves a hidden temp directory and
// the previous pointer: the last checkpoint stays the previous complete one.
func TestInterruptedCheckpointKeepsLast(t *testing.T) {
	work := t.TempDir()
	reg := tinyReg()
	if _, err := SaveCheckpoint(work, "iter_0000003", reg, NewSGD(0, 0, false), &State{Iter: 3}, true); err != nil {
		t.Fatal(err)
	}
	// what a kill in the middle of SaveCheckpoint("iter_0000006") leaves
	tmp := filepath.Join(work, "checkpoints", ".tmp-iter_0000006-123")
	os.MkdirAll(tmp, 0o755)
	os.WriteFile(filepath.Join(tmp, ModelFile), []byte("partial"), 0o644)
	// and a torn pointer temp file
	os.WriteFile(filepath.Join(work, LastPointer+".tmp"), []byte("checkpoints/iter_00"), 0o644)
	dir, err := ResolveCheckpoint(work)
	if err != nil || filepath.Base(dir) != "iter_0000003" {
		t.Fatalf("after an interrupted save, last checkpoint %q (%v), want iter_0000003", dir, err)
	}
	if _, err := LoadCheckpoint(dir, tinyReg(), NewSGD(0, 0, false)); err != nil {
		t.Fatal(err)
	}
	CleanTemp(work)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Error("temp checkpoint not cleaned")
	}
	// overwriting an existing checkpoint name (e.g. "best") replaces it whole
	reg.Get("a.bias").Data()[0] = 42
	if _, err := SaveCheckpoint(work, "iter_0000003", reg, nil, &State{Iter: 3}, false); err != nil {
		t.Fatal(err)
	}
	reg3 := tinyReg()
	if _, err := LoadCheckpoint(filepath.Join(work, "checkpoints", "iter_0000003"), reg3, nil); err != nil {
		t.Fatal(err)
	}
	if reg3.Get("a.bias").Data()[0] != 42 {
		t.Error("checkpoint not replaced")
	}
}

func TestResolveCheckpointErrors(t *testing.T) {
	work := t.TempDir()
	if _, err := ResolveCheckpoint(work); err == nil {
		t.Error("empty work dir resolved")
	}
	os.WriteFile(filepath.Join(work, LastPointer), []byte("checkpoints/gone\n"), 0o644)
	if _, err := ResolveCheckpoint(work); err == nil {
		t.Error("dangling pointer resolved")
	}
}
