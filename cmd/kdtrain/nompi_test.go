//go:build !mpi

package main

import (
	"os"
	"strings"
	"testing"
)

// TestNoMPIUnderLauncher: the default (pure Go) binary started as one of
// several MPI ranks stops with exit code 2 and says how to rebuild, before
// writing anything.
func TestNoMPIUnderLauncher(t *testing.T) {
	cfg, work := tinySetup(t, "")
	c := command("--config", cfg)
	c.Env = append(c.Env, "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_RANK=1")
	out, err := c.CombinedOutput()
	if c.ProcessState == nil || c.ProcessState.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2:\n%s", err, out)
	}
	if !strings.Contains(string(out), "go build -tags mpi") || !strings.Contains(string(out), "one of 2 ranks") {
		t.Fatalf("message does not say how to rebuild:\n%s", out)
	}
	if _, err := os.Stat(work); err == nil {
		t.Fatal("the work dir was created")
	}
}
