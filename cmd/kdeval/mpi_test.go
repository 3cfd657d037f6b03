//go:build mpi

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/model"
)

// The test binary doubles as kdeval under mpirun when KDEVAL_AS_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("KDEVAL_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestMPIModelMode: mpirun -np 2 kdeval prints exactly the one-process
// summary and per-class table (rank 0 only), for a split that does not
// divide evenly over the ranks (3 images on 2 ranks).
func TestMPIModelMode(t *testing.T) {
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not on PATH")
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tiny.yaml")
	yaml := fmt.Sprintf(tinyYAML, filepath.Join(dir, "synth"))
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
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
	weights := filepath.Join(dir, "w.safetensors")
	if err := model.SaveWeights(det.Reg, weights, nil); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfgPath, "--checkpoint", weights, "--quiet"}
	var one, oneErr bytes.Buffer
	if code := run(args, &one, &oneErr); code != 0 {
		t.Fatalf("one process: exit %d\n%s", code, oneErr.String())
	}
	c := exec.Command("mpirun", append([]string{"--oversubscribe", "--allow-run-as-root", "-x", "KDEVAL_AS_MAIN=1", "-x", "GOMAXPROCS=1",
		"-np", "2", os.Args[0]}, args...)...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("mpirun: %v\n%s", err, errb.String())
	}
	if out.String() != one.String() {
		t.Fatalf("2 ranks printed\n%s\none process\n%s", out.String(), one.String())
	}
	if bytes.Count(out.Bytes(), []byte("Average Precision")) == 0 {
		t.Fatalf("no summary:\n%s", out.String())
	}
}
