package main

import (
	"errors"

	"github.com/skd-go/skd/dist"
)

// Model mode under an MPI launcher (binary built with -tags mpi): every
// rank loads the model and evaluates its shard of the val images, rank 0
// gathers the detections, evaluates and reports (docs/DISTRIBUTED.md):
//
//	mpirun -np 4 bin/kdeval --config C.yaml --checkpoint work_dirs/run

// agreedError is an error every rank returned; only rank 0 prints it.
type agreedError struct{ error }

func (e agreedError) Unwrap() error { return e.error }

func (o *options) joinWorld() error {
	w, err := dist.Init()
	if err != nil {
		return err
	}
	o.world = w
	dist.SetThreads()
	return nil
}

// rootFirst runs f on rank 0, then on the other ranks (rank 0 generates a
// missing synthetic set before the others look for it), and returns the
// same error on every rank.
func (o *options) rootFirst(f func() error) error {
	w := o.world
	if w.Size() == 1 {
		return f()
	}
	var err error
	if w.IsRoot() {
		err = f()
	}
	if berr := w.Barrier(); berr != nil {
		return berr
	}
	if !w.IsRoot() {
		err = f()
	}
	return o.agreed(w.Agree(err))
}

// agreed marks an error that every rank returned (collective).
func (o *options) agreed(err error) error {
	if err == nil || o.world == nil || o.world.Size() == 1 {
		return err
	}
	return agreedError{err}
}

// silent reports whether this rank leaves err to rank 0.
func (o *options) silent(err error) bool {
	var ae agreedError
	return o.world != nil && !o.world.IsRoot() && errors.As(err, &ae)
}

func (o *options) leaveWorld() {
	if o.world != nil {
		o.world.Finalize()
	}
}
