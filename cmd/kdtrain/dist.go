package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/skd-go/skd/dist"
	"github.com/skd-go/skd/train"
)

// world is the data-parallel world of this process (set by the training
// command; nil before).
var world *dist.World

// joinWorld joins the MPI world (a one-process world without -tags mpi
// or without a launcher) and sets this rank's threads.
func joinWorld(log *slog.Logger) (*dist.World, error) {
	w, err := dist.Init()
	if err != nil {
		return nil, usageError{err}
	}
	world = w
	n, why := dist.SetThreads()
	if w.Size() > 1 && w.IsRoot() {
		log.Info("data-parallel run", "ranks", w.Size(), "backend", w.Backend(), "gomaxprocs", n, "threads", why)
	}
	return w, nil
}

// finishWorld ends a run's world: an error every rank agreed on is
// printed by rank 0 only and every rank exits with its code after
// MPI_Finalize; an error of this rank alone is printed with the rank and
// aborts the whole job (the other ranks could be waiting in a collective).
func finishWorld(err error, stderr io.Writer, code int) int {
	w := world
	if w == nil || w.Size() == 1 {
		if w != nil {
			w.Finalize()
		}
		if err != nil {
			fmt.Fprintln(stderr, "kdtrain:", err)
		}
		return code
	}
	if err == nil {
		if ferr := w.Finalize(); ferr != nil {
			fmt.Fprintln(stderr, "kdtrain:", ferr)
			return 1
		}
		return 0
	}
	if !train.Collective(err) {
		fmt.Fprintf(stderr, "kdtrain: rank %d of %d: %v; aborting every rank\n", w.Rank(), w.Size(), err)
		w.Abort(code)
		return code
	}
	if w.IsRoot() {
		fmt.Fprintln(stderr, "kdtrain:", err)
	}
	w.Finalize()
	return code
}

// Unwrap lets errors.As see through a usage error (train.Collective).
func (u usageError) Unwrap() error { return u.error }
