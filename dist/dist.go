// Package dist is the data-parallel communication layer: a World of N
// ranks with the few collectives that distributed training needs
// (in-place float32 / float64 sum-allreduce, broadcast, barrier, byte
// gather and allgather), each returning a Go error.
//
// Three implementations sit behind the same World:
//
//   - MPI (build tag mpi): a small cgo binding over the MPI C API
//     (OpenMPI via pkg-config ompi). Start the binary with mpirun, srun
//     --mpi=pmix or an MPI Operator MPIJob; see docs/DISTRIBUTED.md.
//   - the default pure-Go build: a one-process world (rank 0 of 1). A
//     binary built without the tag that finds itself started as one of
//     several MPI ranks (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_SIZE > 1
//     in its environment) refuses to run: Init returns ErrNoMPI with the
//     command that rebuilds it.
//   - Local: N worlds inside one process, connected by shared memory
//     (tests run N-rank training in one go test without MPI).
//
// Every collective must be called by every rank in the same order, as in
// MPI. Sums are taken in rank order, so every rank gets bit-identical
// results. EnableAsync moves every collective onto one communication
// goroutine, in call order, so that AllreduceSumAsync can run while the
// caller computes (async.go: the gradient allreduce overlapped with the
// backward pass).
package dist

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// comm is one implementation of the collectives.
type comm interface {
	rank() int
	size() int
	allreduceF32(buf []float32) error
	allreduceF64(buf []float64) error
	bcastBytes(b []byte, root int) ([]byte, error)
	bcastF32(buf []float32, root int) error
	barrier() error
	gather(b []byte, root int) ([][]byte, error)
	allgather(b []byte) ([][]byte, error)
	abort(code int)
	finalize() error
}

// World is the set of ranks of one run.
type World struct {
	c       comm
	backend string
}

// ErrNoMPI: a binary without MPI support was started by an MPI launcher.
var ErrNoMPI = errors.New("dist: this binary was built without MPI support")

// Single returns a one-process world (rank 0 of 1).
func Single() *World { return &World{c: single{}, backend: "single"} }

// Init joins the world the process was started in: the MPI world when the
// binary is built with -tags mpi, otherwise a one-process world (or
// ErrNoMPI when an MPI launcher started several ranks).
func Init() (*World, error) { return initWorld() }

// Rank is this process's rank, 0 <= Rank < Size.
func (w *World) Rank() int { return w.c.rank() }

// Size is the number of ranks.
func (w *World) Size() int { return w.c.size() }

// IsRoot reports whether this is rank 0 (the rank that writes).
func (w *World) IsRoot() bool { return w.c.rank() == 0 }

// Backend names the implementation: "mpi", "single" or "local".
func (w *World) Backend() string { return w.backend }

// AllreduceSum replaces buf on every rank by the element-wise sum over
// ranks (buf has the same length on every rank).
func (w *World) AllreduceSum(buf []float32) error {
	if w.Size() == 1 || len(buf) == 0 {
		return nil
	}
	return w.c.allreduceF32(buf)
}

// AllreduceSumFloat64 is AllreduceSum for float64 values (statistics,
// losses).
func (w *World) AllreduceSumFloat64(buf []float64) error {
	if w.Size() == 1 || len(buf) == 0 {
		return nil
	}
	return w.c.allreduceF64(buf)
}

// AllreduceMean averages buf over ranks in place.
func (w *World) AllreduceMean(buf []float32) error {
	if w.Size() == 1 {
		return nil
	}
	if err := w.AllreduceSum(buf); err != nil {
		return err
	}
	inv := 1 / float32(w.Size())
	for i := range buf {
		buf[i] *= inv
	}
	return nil
}

// Broadcast copies root's buf into buf on every rank (same length
// everywhere).
func (w *World) Broadcast(buf []float32, root int) error {
	if err := w.checkRoot(root); err != nil {
		return err
	}
	if w.Size() == 1 || len(buf) == 0 {
		return nil
	}
	return w.c.bcastF32(buf, root)
}

// BroadcastBytes returns root's b on every rank (any length; the other
// ranks' b is ignored).
func (w *World) BroadcastBytes(b []byte, root int) ([]byte, error) {
	if err := w.checkRoot(root); err != nil {
		return nil, err
	}
	if w.Size() == 1 {
		return b, nil
	}
	return w.c.bcastBytes(b, root)
}

// Barrier returns when every rank has entered it.
func (w *World) Barrier() error {
	if w.Size() == 1 {
		return nil
	}
	return w.c.barrier()
}

// Gather returns every rank's b (indexed by rank) on root and nil
// elsewhere; lengths may differ between ranks.
func (w *World) Gather(b []byte, root int) ([][]byte, error) {
	if err := w.checkRoot(root); err != nil {
		return nil, err
	}
	if w.Size() == 1 {
		return [][]byte{b}, nil
	}
	return w.c.gather(b, root)
}

// Allgather returns every rank's b, indexed by rank, on every rank.
func (w *World) Allgather(b []byte) ([][]byte, error) {
	if w.Size() == 1 {
		return [][]byte{b}, nil
	}
	return w.c.allgather(b)
}

// Abort ends every rank of the world with the exit code (MPI_Abort):
// what a rank does when it fails alone in the middle of a step, where the
// others would otherwise wait in a collective forever. In a one-process
// world it exits.
func (w *World) Abort(code int) { w.c.abort(code) }

// Finalize leaves the world; call it once, at the end, on every rank.
func (w *World) Finalize() error { return w.c.finalize() }

func (w *World) checkRoot(root int) error {
	if root < 0 || root >= w.Size() {
		return fmt.Errorf("dist: root %d out of range for %d ranks", root, w.Size())
	}
	return nil
}

// Agree is the collective error check of a step that can fail on some
// ranks only (a file one rank cannot read): every rank passes its own
// error (or nil) and every rank gets the same result, nil when all
// succeeded, else an error naming each failing rank and its message.
func (w *World) Agree(err error) error {
	msg := ""
	if err != nil {
		msg = err.Error()
		if msg == "" {
			msg = "failed"
		}
	}
	if w.Size() == 1 {
		return err
	}
	all, gerr := w.Allgather([]byte(msg))
	if gerr != nil {
		return gerr
	}
	var errs []error
	for r, m := range all {
		if len(m) > 0 {
			errs = append(errs, &RankError{Rank: r, Msg: string(m)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	if err != nil && len(errs) == 1 {
		return &RankError{Rank: w.Rank(), Msg: err.Error(), err: err}
	}
	return errors.Join(errs...)
}

// RankError is a failure reported by one rank.
type RankError struct {
	Rank int
	Msg  string
	err  error
}

func (e *RankError) Error() string { return fmt.Sprintf("rank %d: %s", e.Rank, e.Msg) }

// Unwrap returns the rank's own error when it is this rank's.
func (e *RankError) Unwrap() error { return e.err }

// LauncherSize returns the world size an MPI launcher announced in the
// environment (OpenMPI's mpirun: OMPI_COMM_WORLD_SIZE; Hydra / PMI-2:
// PMI_SIZE; PMIx: PMIX_SIZE; Slurm's srun: SLURM_STEP_NUM_TASKS), or 1
// when there is none.
func LauncherSize() int {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"} {
		if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
			return v
		}
	}
	return 1
}

// launched reports whether a launcher started this process (an MPI
// binary then joins the launcher's world even when LauncherSize cannot
// tell its size, e.g. srun --mpi=pmix sets only PMIX_RANK).
func launched() bool {
	if LauncherSize() > 1 {
		return true
	}
	for _, k := range []string{"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

// LocalSize returns how many ranks the launcher started on this machine
// (OMPI_COMM_WORLD_LOCAL_SIZE, MPI_LOCALNRANKS, SLURM_NTASKS_PER_NODE), or
// 1 when none says.
func LocalSize() int {
	for _, k := range []string{"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"} {
		if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
			return v
		}
	}
	return 1
}

// single is the one-process world.
type single struct{}

func (single) rank() int                                  { return 0 }
func (single) size() int                                  { return 1 }
func (single) allreduceF32([]float32) error               { return nil }
func (single) allreduceF64([]float64) error               { return nil }
func (single) bcastBytes(b []byte, _ int) ([]byte, error) { return b, nil }
func (single) bcastF32([]float32, int) error              { return nil }
func (single) barrier() error                             { return nil }
func (single) gather(b []byte, _ int) ([][]byte, error)   { return [][]byte{b}, nil }
func (single) allgather(b []byte) ([][]byte, error)       { return [][]byte{b}, nil }
func (single) abort(code int)                             { os.Exit(code) }
func (single) finalize() error                            { return nil }
