package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data/synth"
	"github.com/skd-go/skd/infer"
	"github.com/skd-go/skd/model"
)

const tinyYAML = `model:
  backbone: {depth: 18, width_mult: 0.125}
  fpn_channels: 16
  rpn: {pre_nms_top_n_test: 100, post_nms_top_n_test: 50}
  roi_heads: {num_classes: 6, representation_size: 32}
input: {min_size: [96], min_size_test: 96, max_size: 128}
data:
  synth: {dir: %s, train: 1, val: 3, seed: 4, size: 96}
`

// TestModelMode evaluates a tiny random model on a synthetic val split
// generated on demand, through a weights file, a checkpoint directory and
// a work_dir's last_checkpoint, and compares the printed summary with
// infer.EvaluateDataset's.
func TestModelMode(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tiny.yaml")
	synthDir := filepath.Join(dir, "synth")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(tinyYAML, synthDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.LoadFile(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	det, err := model.New(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	det.Init(5)
	work := filepath.Join(dir, "work")
	ck := filepath.Join(work, "checkpoints", "iter_0000010")
	if err := os.MkdirAll(ck, 0o755); err != nil {
		t.Fatal(err)
	}
	weights := filepath.Join(ck, "model.safetensors")
	if err := model.SaveWeights(det.Reg, weights, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "last_checkpoint"), []byte("iter_0000010\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	var outs []string
	for i, ckArg := range []string{work, ck, weights} {
		jsonOut := filepath.Join(dir, fmt.Sprintf("m%d.json", i))
		var stdout, stderr bytes.Buffer
		code := run([]string{"--config", cfgPath, "--checkpoint", ckArg, "--max-images", "2", "--json", jsonOut}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("--checkpoint %s: exit %d\n%s", ckArg, code, stderr.String())
		}
		if i == 0 {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			if !strings.Contains(stderr.String(), "generating the synthetic set") {
				t.Errorf("stderr:\n%s", stderr.String())
			}
		}
		outs = append(outs, stdout.String())
		raw, err := os.ReadFile(jsonOut)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["AP"].(float64); !ok || len(m["per_class"].(map[string]any)) != 5 {
			t.Errorf("metrics %s", raw)
		}
	}
	if outs[0] != outs[1] || outs[1] != outs[2] {
		t.Errorf("different outputs for the same weights:\n%s\n%s\n%s", outs[0], outs[1], outs[2])
	}
	// The same as the library's evaluation of the same split.
	res, _, err := infer.EvaluateDataset(det, cfg, synth.ValAnnotations(synthDir), synth.ValImages(synthDir), 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := res.Summary() + "\n" + res.PerClassTable(); outs[0] != want {
		t.Errorf("printed\n%s\nwant\n%s", outs[0], want)
	}
	if len(res.Params.ImgIDs) != 2 {
		t.Errorf("evaluated %v", res.Params.ImgIDs)
	}

	// Errors: exit 2 with a message, no panic trace.
	empty, dangling := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dangling, "last_checkpoint"), []byte("gone"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--config", cfgPath, "--checkpoint", empty}, "without model.safetensors or last_checkpoint"},
		{[]string{"--config", cfgPath, "--checkpoint", dangling}, `names "gone"`},
		{[]string{"--config", cfgPath, "--checkpoint", filepath.Join(dir, "nope")}, "nope"},
		{[]string{"--config", cfgPath}, "both --config and --checkpoint"},
		{[]string{"--config", cfgPath, "--checkpoint", weights, "--set", "model.roi_heads.num_classes=3"}, "--set model.roi_heads.num_classes=6"},
		{[]string{"--config", cfgPath, "--checkpoint", weights, "--results", "x.json"}, "cannot be combined"},
	}
	for _, b := range bad {
		var stdout, stderr bytes.Buffer
		if code := run(b.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), b.want) || strings.Contains(stderr.String(), "goroutine") {
			t.Errorf("%v: exit %d, stderr %s (want %q)", b.args, code, stderr.String(), b.want)
		}
	}
}
