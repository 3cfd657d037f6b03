package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/model"
)

// TestExitCodesReliability extends TestDetectSetupErrors with the bad
// inputs of issue 12: NaN thresholds were accepted, a directory as
// --weights was called an "empty file", NaN weights loaded silently.
func TestExitCodesReliability(t *testing.T) {
	dir, cfgPath, _ := setup(t, "contiguous")
	images := filepath.Join(dir, "images")
	out := filepath.Join(dir, "out.json")
	cfg, _, err := config.LoadFile(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	det, err := model.New(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	det.Init(3)
	det.Reg.Params()[0].Data()[0] = float32(math.NaN())
	nanW := filepath.Join(dir, "nan.safetensors")
	if err := model.SaveWeights(det.Reg, nanW, nil); err != nil {
		t.Fatal(err)
	}
	emptyDir := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"NaN score threshold", []string{"--score-thresh", "NaN"}, "--score-thresh NaN"},
		{"NaN vis threshold", []string{"--vis-thresh", "nan"}, "--vis-thresh NaN"},
		{"negative workers", []string{"--workers", "-1"}, "--workers -1"},
		{"bad flag value", []string{"--batch-size", "two"}, "invalid argument"},
		{"unknown flag", []string{"--bogus"}, "unknown flag"},
		{"directory as weights", []string{"--weights", emptyDir}, "is a directory without model.safetensors"},
		{"NaN weights", []string{"--weights", nanW}, "NaN or Inf"},
	}
	for _, c := range cases {
		args := []string{"--config", cfgPath, "--weights", filepath.Join(dir, "model.safetensors"), "--images", images, "--out", out}
		args = append(args, c.args...) // later flags win
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), "empty file") {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", c.name, code, stderr.String(), c.want)
		}
	}
	// a checkpoint directory stands for its model.safetensors
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--config", cfgPath, "--weights", dir, "--images", images, "--out", out, "--quiet"}, &stdout, &stderr); code != 0 {
		t.Errorf("--weights CHECKPOINT_DIR: exit %d\n%s", code, stderr.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("--weights CHECKPOINT_DIR wrote no results: %v", err)
	}
}
