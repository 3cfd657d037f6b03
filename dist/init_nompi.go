//go:build !mpi

package dist

import "fmt"

// MPIEnabled reports whether the binary was built with -tags mpi.
const MPIEnabled = false

func initWorld() (*World, error) {
	if n := LauncherSize(); n > 1 {
		return nil, fmt.Errorf("%w, but an MPI launcher started it as one of %d ranks; "+
			"rebuild with MPI (needs libopenmpi-dev and a C compiler): "+
			"go build -tags mpi -o bin/ ./cmd/... (see docs/DISTRIBUTED.md)", ErrNoMPI, n)
	}
	return Single(), nil
}
