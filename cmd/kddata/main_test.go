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

// TestExitCodes is the README's exit-code promise for kddata: bad flags,
// arguments and input exit 2 (issue 12: they exited 1), with a message.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	notEmpty := filepath.Join(dir, "full")
	os.MkdirAll(notEmpty, 0o755)
	os.WriteFile(filepath.Join(notEmpty, "x"), []byte("x"), 0o644)
	badAnn := filepath.Join(dir, "bad.json")
	os.WriteFile(badAnn, []byte("{not json"), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "a command is required"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"synth", "--bogus"}, "unknown flag"},
		{"bad flag value", []string{"synth", "--out", dir, "--train", "abc"}, "invalid argument"},
		{"missing --out", []string{"synth"}, "--out is required"},
		{"positional", []string{"synth", "extra"}, "takes no arguments"},
		{"negative count", []string{"synth", "--out", filepath.Join(dir, "n"), "--train", "-3"}, "train"},
		{"directory holding something else", []string{"synth", "--out", notEmpty, "--train", "2", "--val", "1"}, "not empty"},
		{"stats without --ann", []string{"stats"}, "--ann is required"},
		{"stats of a missing file", []string{"stats", "--ann", filepath.Join(dir, "none.json")}, "none.json"},
		{"stats of bad JSON", []string{"stats", "--ann", badAnn}, "bad.json"},
	}
	for _, c := range cases {
		var out, errb strings.Builder
		code := run(c.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%s: %v: exit %d, stderr %q; want 2 and %q", c.name, c.args, code, errb.String(), c.want)
		}
	}
	var out, errb strings.Builder
	if code := run([]string{"--help"}, &out, &errb); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
}
