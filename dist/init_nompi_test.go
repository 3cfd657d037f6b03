//go:build !mpi

package dist

import (
	"errors"
	"strings"
	"testing"
)

func TestInitWithoutMPI(t *testing.T) {
	t.Setenv("PMI_SIZE", "")
	t.Setenv("PMIX_SIZE", "")
	t.Setenv("SLURM_STEP_NUM_TASKS", "")
	t.Setenv("OMPI_COMM_WORLD_SIZE", "1")
	w, err := Init()
	if err != nil || w.Size() != 1 || w.Rank() != 0 {
		t.Fatalf("one process: %v %v", w, err)
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	_, err = Init()
	if !errors.Is(err, ErrNoMPI) || !strings.Contains(err.Error(), "-tags mpi") || !strings.Contains(err.Error(), "one of 2 ranks") {
		t.Fatalf("under mpirun without the tag: %v", err)
	}
}
