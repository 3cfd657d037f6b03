package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/model/weights"
)

func TestShip(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "checkpoints", "model_final")
	if err := os.MkdirAll(ck, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]float32, 1000)
	for i := range data {
		data[i] = float32(i)/100 - 3
	}
	sd := weights.StateDict{"backbone.conv1.weight": {Shape: []int{10, 100}, Data: data}}
	if err := weights.SaveSafetensors(filepath.Join(ck, "model.safetensors"), sd, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ship", "t.safetensors")
	if err := run(ck, out, 15); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	line, _ := os.ReadFile(out + ".sha256")
	if want := hex.EncodeToString(sum[:]) + "  t.safetensors\n"; string(line) != want {
		t.Errorf("sha256 file %q, want %q", line, want)
	}
	got, meta, err := weights.LoadSafetensors(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(meta["dtype"], "F16") || len(b) > 2*len(data)+1000 {
		t.Errorf("meta %v, %d bytes", meta, len(b))
	}
	for i, x := range got["backbone.conv1.weight"].Data {
		if d := x - data[i]; d > 2e-3 || d < -2e-3 {
			t.Fatalf("value %d: %v, want %v", i, x, data[i])
		}
	}
	if err := run(ck, filepath.Join(dir, "big.safetensors"), 0.001); err == nil {
		t.Error("a file over -max-mb was accepted")
	} else if _, serr := os.Stat(filepath.Join(dir, "big.safetensors")); !os.IsNotExist(serr) {
		t.Error("the refused file was left behind")
	}
}
