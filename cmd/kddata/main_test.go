package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSynthCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "set")
	root := newRoot()
	root.SetArgs([]string{"synth", "--out", out, "--train", "2", "--val", "1", "--seed", "3", "--size", "64"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"annotations/instances_train.json", "annotations/instances_val.json", "train/000002.jpg", "val/000001.jpg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	root = newRoot()
	root.SetArgs([]string{"stats", "--ann", filepath.Join(out, "annotations/instances_train.json"), "--images", filepath.Join(out, "train")})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	// Same directory, other seed: refused.
	root = newRoot()
	root.SetArgs([]string{"synth", "--out", out, "--train", "2", "--val", "1", "--seed", "4", "--size", "64"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "other options") {
		t.Errorf("other seed: %v", err)
	}
	root = newRoot()
	root.SetArgs([]string{"synth"})
	if err := root.Execute(); err == nil {
		t.Error("missing --out accepted")
	}
}
