package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/model"
	"github.com/skd-go/skd/train"
)

// TestCorruptCheckpoint: kdeval verifies a checkpoint's model.safetensors
// against the SHA-256 in its state.json (issue 12: a bit-flipped
// checkpoint was used silently), and model-mode bad flags exit 2.
func TestCorruptCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(tinyYAML, filepath.Join(dir, "synth"))), 0o644); err != nil {
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
	ck, err := train.SaveCheckpoint(work, "iter_0000010", det.Reg, nil, &train.State{Iter: 10}, true)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(ck, train.ModelFile)
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", cfgPath, "--checkpoint", work, "--quiet"}, "model.safetensors is corrupt"},
		{[]string{"--config", cfgPath, "--checkpoint", ck, "--quiet"}, "model.safetensors is corrupt"},
		{[]string{"--config", cfgPath, "--checkpoint", ck, "--max-images", "-1"}, "--max-images"},
		{[]string{"--config", cfgPath, "--checkpoint", ck, "--set", "solver.base_lr=.nan"}, "solver.base_lr is NaN"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(c.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}
