package dist

import (
	"fmt"
	"runtime"
	"time"
)

// Asynchronous collectives (gradient allreduce overlapped with the backward
// pass). MPI requires every rank to call the collectives of a communicator
// in the same order. A collective running on a communication goroutine
// while the caller goes on and starts another one (SyncBN's statistics in
// the backward pass) would race for the library: each rank could enter
// the two in a different order and the job would deadlock. So once
// EnableAsync has been called, every collective of the world, blocking or
// not, runs on one communication goroutine (locked to one OS thread), in
// the order the caller issued it: the order is the program's, the same on
// every rank. MPI is initialised with MPI_THREAD_SERIALIZED (dist/mpi.go),
// which allows calls from a thread other than the initialising one as
// long as no two overlap; the binding's lock guarantees that.

// Request is a collective started by AllreduceSumAsync.
type Request struct {
	done chan struct{}
	err  error
	// Start and End are when the communication goroutine began and
	// finished the collective (valid after Wait; equal for a collective
	// that needed no communication).
	Start, End time.Time
}

// Wait blocks until the collective has finished and returns its error.
func (r *Request) Wait() error {
	<-r.done
	return r.err
}

// finished returns a request that is already complete.
func finished(err error) *Request {
	now := time.Now()
	r := &Request{done: make(chan struct{}), err: err, Start: now, End: now}
	close(r.done)
	return r
}

// funnel runs the collectives of a world on one goroutine, in order.
type funnel struct {
	inner  comm
	jobs   chan func()
	closed bool
}

// loop runs the jobs on one OS thread. With a nice value the thread is
// never handed back to the Go scheduler (a locked goroutine that exits
// takes its thread with it), so no other goroutine inherits the priority.
func (f *funnel) loop(nice int, started chan<- error) {
	runtime.LockOSThread()
	if nice == 0 {
		defer runtime.UnlockOSThread()
	}
	err := setThreadNice(nice)
	started <- err
	if err != nil {
		return
	}
	for j := range f.jobs {
		j()
	}
}

// submit queues fn and returns its request.
func (f *funnel) submit(fn func() error) *Request {
	r := &Request{done: make(chan struct{})}
	f.jobs <- func() {
		r.Start = time.Now()
		r.err = fn()
		r.End = time.Now()
		close(r.done)
	}
	return r
}

// do runs fn on the communication goroutine and waits for it.
func (f *funnel) do(fn func() error) error { return f.submit(fn).Wait() }

// EnableAsync starts the world's communication goroutine: from now on
// every collective of w runs there in call order, and AllreduceSumAsync
// returns before its allreduce has finished. Call it once, before the
// collectives it must order, from the goroutine that drives w (it is not
// safe against concurrent collectives). With one rank it does nothing.
//
// nice, when not 0, is the communication thread's nice value (Linux):
// MPI polls the CPU while it waits for the other ranks inside a blocking
// collective, and an allreduce running beside the compute threads
// competes with them for the cores; with a positive value it takes the
// cores mostly when the compute threads leave them idle.
func (w *World) EnableAsync(nice int) error {
	if w.Size() == 1 || w.Async() {
		return nil
	}
	f := &funnel{inner: w.c, jobs: make(chan func(), 64)}
	started := make(chan error, 1)
	go f.loop(nice, started)
	if err := <-started; err != nil {
		return fmt.Errorf("dist: communication thread: %w", err)
	}
	w.c = f
	return nil
}

// Async reports whether EnableAsync started the communication goroutine.
func (w *World) Async() bool {
	_, ok := w.c.(*funnel)
	return ok
}

// AllreduceSumAsync starts AllreduceSum(buf) on the communication goroutine
// and returns at once; buf must not be touched until Wait returns. Without
// EnableAsync (or with one rank) the allreduce runs before it returns.
func (w *World) AllreduceSumAsync(buf []float32) *Request {
	f, ok := w.c.(*funnel)
	if !ok || len(buf) == 0 {
		return finished(w.AllreduceSum(buf))
	}
	return f.submit(func() error { return f.inner.allreduceF32(buf) })
}

func (f *funnel) rank() int { return f.inner.rank() }
func (f *funnel) size() int { return f.inner.size() }
func (f *funnel) allreduceF32(buf []float32) error {
	return f.do(func() error { return f.inner.allreduceF32(buf) })
}
func (f *funnel) allreduceF64(buf []float64) error {
	return f.do(func() error { return f.inner.allreduceF64(buf) })
}
func (f *funnel) bcastBytes(b []byte, root int) (out []byte, err error) {
	err = f.do(func() error { out, err = f.inner.bcastBytes(b, root); return err })
	return out, err
}
func (f *funnel) bcastF32(buf []float32, root int) error {
	return f.do(func() error { return f.inner.bcastF32(buf, root) })
}
func (f *funnel) barrier() error { return f.do(f.inner.barrier) }
func (f *funnel) gather(b []byte, root int) (out [][]byte, err error) {
	err = f.do(func() error { out, err = f.inner.gather(b, root); return err })
	return out, err
}
func (f *funnel) allgather(b []byte) (out [][]byte, err error) {
	err = f.do(func() error { out, err = f.inner.allgather(b); return err })
	return out, err
}

// abort does not queue: the communication goroutine may be blocked in a
// collective that only the abort ends.
func (f *funnel) abort(code int) { f.inner.abort(code) }

// finalize waits for the queued collectives, stops the communication
// goroutine and finalizes the library from the caller's goroutine, as
// without EnableAsync (the MPI standard asks for MPI_Finalize on the
// thread that initialised MPI; the communication thread never is).
func (f *funnel) finalize() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.do(func() error { return nil }) // every job before it has run
	close(f.jobs)
	return f.inner.finalize()
}
