//go:build mpi

package dist

/*
#cgo pkg-config: ompi
#include <mpi.h>
#include <stdlib.h>

static MPI_Comm skd_world(void) { return MPI_COMM_WORLD; }
static int skd_init(int *provided) {
	int flag = 0;
	MPI_Initialized(&flag);
	if (flag) { MPI_Query_thread(provided); return MPI_SUCCESS; }
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (rc == MPI_SUCCESS) MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	return rc;
}
static int skd_allreduce_f32(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int skd_allreduce_f64(double *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static int skd_bcast_bytes(void *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int skd_bcast_f32(float *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_FLOAT, root, MPI_COMM_WORLD);
}
static int skd_bcast_long(long long *v, int root) {
	return MPI_Bcast(v, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD);
}
static int skd_allgather_int(int v, int *out) {
	return MPI_Allgather(&v, 1, MPI_INT, out, 1, MPI_INT, MPI_COMM_WORLD);
}
static int skd_gather_int(int v, int *out, int root) {
	return MPI_Gather(&v, 1, MPI_INT, out, 1, MPI_INT, root, MPI_COMM_WORLD);
}
static int skd_gatherv(void *send, int n, void *recv, int *counts, int *displs, int root) {
	return MPI_Gatherv(send, n, MPI_BYTE, recv, counts, displs, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int skd_allgatherv(void *send, int n, void *recv, int *counts, int *displs) {
	return MPI_Allgatherv(send, n, MPI_BYTE, recv, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
}
static int skd_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int skd_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int skd_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int skd_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int skd_finalize(void) { return MPI_Finalize(); }
static void skd_error_string(int rc, char *buf, int *len) { MPI_Error_string(rc, buf, len); }
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"sync"
	"unsafe"
)

// MPIEnabled reports whether the binary was built with -tags mpi.
const MPIEnabled = true

// chunk bounds one MPI call's element count (MPI counts are C ints).
const chunk = 1 << 28

// mpiComm is MPI_COMM_WORLD. The library is initialised with
// MPI_THREAD_SERIALIZED: goroutines may move between OS threads, so every
// call holds mu. After World.EnableAsync every call but MPI_Abort comes
// from the communication goroutine, locked to one OS thread (not the
// initialising one, so FUNNELED would not do), in the program's order
// (async.go).
type mpiComm struct {
	mu   sync.Mutex
	r, n int
	done bool
}

var (
	mpiOnce  sync.Once
	mpiWorld *World
	mpiErr   error
)

func initWorld() (*World, error) {
	if !launched() {
		// not started by a launcher: a plain one-process run, without
		// MPI's singleton start-up
		return Single(), nil
	}
	mpiOnce.Do(func() {
		// OpenMPI may install SIGSEGV/SIGBUS/SIGFPE/SIGABRT handlers in
		// MPI_Init (MCA opal_signal); one replacing the Go runtime's would
		// turn a nil dereference into OpenMPI's backtrace instead of a Go
		// panic (4.1 keeps existing handlers). Disable them unless the
		// user chose.
		if _, set := os.LookupEnv("OMPI_MCA_opal_signal"); !set {
			os.Setenv("OMPI_MCA_opal_signal", "")
		}
		var provided C.int
		if rc := C.skd_init(&provided); rc != C.MPI_SUCCESS {
			mpiErr = fmt.Errorf("dist: MPI_Init_thread: %s", errString(rc))
			return
		}
		if provided < C.MPI_THREAD_SERIALIZED {
			mpiErr = fmt.Errorf("dist: the MPI library gives thread level %d, need MPI_THREAD_SERIALIZED", int(provided))
			return
		}
		var r, n C.int
		if rc := C.skd_rank(&r); rc != C.MPI_SUCCESS {
			mpiErr = fmt.Errorf("dist: MPI_Comm_rank: %s", errString(rc))
			return
		}
		if rc := C.skd_size(&n); rc != C.MPI_SUCCESS {
			mpiErr = fmt.Errorf("dist: MPI_Comm_size: %s", errString(rc))
			return
		}
		mpiWorld = &World{c: &mpiComm{r: int(r), n: int(n)}, backend: "mpi"}
	})
	return mpiWorld, mpiErr
}

func errString(rc C.int) string {
	buf := make([]byte, C.MPI_MAX_ERROR_STRING+1)
	var n C.int
	C.skd_error_string(rc, (*C.char)(unsafe.Pointer(&buf[0])), &n)
	return string(buf[:int(n)])
}

func check(what string, rc C.int) error {
	if rc != C.MPI_SUCCESS {
		return fmt.Errorf("dist: %s: %s", what, errString(rc))
	}
	return nil
}

func (m *mpiComm) rank() int { return m.r }
func (m *mpiComm) size() int { return m.n }

func (m *mpiComm) allreduceF32(buf []float32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for lo := 0; lo < len(buf); lo += chunk {
		hi := min(lo+chunk, len(buf))
		if err := check("MPI_Allreduce", C.skd_allreduce_f32((*C.float)(unsafe.Pointer(&buf[lo])), C.int(hi-lo))); err != nil {
			return err
		}
	}
	return nil
}

func (m *mpiComm) allreduceF64(buf []float64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for lo := 0; lo < len(buf); lo += chunk {
		hi := min(lo+chunk, len(buf))
		if err := check("MPI_Allreduce", C.skd_allreduce_f64((*C.double)(unsafe.Pointer(&buf[lo])), C.int(hi-lo))); err != nil {
			return err
		}
	}
	return nil
}

func (m *mpiComm) bcastF32(buf []float32, root int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for lo := 0; lo < len(buf); lo += chunk {
		hi := min(lo+chunk, len(buf))
		if err := check("MPI_Bcast", C.skd_bcast_f32((*C.float)(unsafe.Pointer(&buf[lo])), C.int(hi-lo), C.int(root))); err != nil {
			return err
		}
	}
	return nil
}

func (m *mpiComm) bcastBytes(b []byte, root int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := C.longlong(len(b))
	if err := check("MPI_Bcast", C.skd_bcast_long(&n, C.int(root))); err != nil {
		return nil, err
	}
	out := b
	if m.r != root {
		out = make([]byte, int(n))
	}
	for lo := 0; lo < len(out); lo += chunk {
		hi := min(lo+chunk, len(out))
		if err := check("MPI_Bcast", C.skd_bcast_bytes(unsafe.Pointer(&out[lo]), C.int(hi-lo), C.int(root))); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (m *mpiComm) barrier() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return check("MPI_Barrier", C.skd_barrier())
}

// layout turns per-rank byte counts into C counts and displacements.
func layout(counts []C.int) (displs []C.int, total int, err error) {
	displs = make([]C.int, len(counts))
	for i, c := range counts {
		if total+int(c) > math.MaxInt32 {
			return nil, 0, fmt.Errorf("dist: gathering more than 2 GiB")
		}
		displs[i] = C.int(total)
		total += int(c)
	}
	return displs, total, nil
}

func split(buf []byte, counts, displs []C.int) [][]byte {
	out := make([][]byte, len(counts))
	for i := range counts {
		out[i] = buf[int(displs[i]) : int(displs[i])+int(counts[i]) : int(displs[i])+int(counts[i])]
	}
	return out
}

var dummy [1]byte

// ptr returns a pointer to b's data, or to a dummy byte when b is empty.
func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return unsafe.Pointer(&dummy[0])
	}
	return unsafe.Pointer(&b[0])
}

func (m *mpiComm) gather(b []byte, root int) ([][]byte, error) {
	if len(b) > math.MaxInt32 {
		return nil, fmt.Errorf("dist: gathering %d bytes from one rank", len(b))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := make([]C.int, m.n)
	if err := check("MPI_Gather", C.skd_gather_int(C.int(len(b)), &counts[0], C.int(root))); err != nil {
		return nil, err
	}
	var displs []C.int
	var recv []byte
	if m.r == root {
		var total int
		var err error
		if displs, total, err = layout(counts); err != nil {
			return nil, err
		}
		recv = make([]byte, total)
	} else {
		displs = make([]C.int, m.n)
	}
	if err := check("MPI_Gatherv", C.skd_gatherv(ptr(b), C.int(len(b)), ptr(recv), &counts[0], &displs[0], C.int(root))); err != nil {
		return nil, err
	}
	if m.r != root {
		return nil, nil
	}
	return split(recv, counts, displs), nil
}

func (m *mpiComm) allgather(b []byte) ([][]byte, error) {
	if len(b) > math.MaxInt32 {
		return nil, fmt.Errorf("dist: gathering %d bytes from one rank", len(b))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := make([]C.int, m.n)
	if err := check("MPI_Allgather", C.skd_allgather_int(C.int(len(b)), &counts[0])); err != nil {
		return nil, err
	}
	displs, total, err := layout(counts)
	if err != nil {
		return nil, err
	}
	recv := make([]byte, total)
	if err := check("MPI_Allgatherv", C.skd_allgatherv(ptr(b), C.int(len(b)), ptr(recv), &counts[0], &displs[0])); err != nil {
		return nil, err
	}
	return split(recv, counts, displs), nil
}

func (m *mpiComm) abort(code int) {
	// no lock: another goroutine may be blocked in a collective
	C.skd_abort(C.int(code))
	os.Exit(code)
}

func (m *mpiComm) finalize() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		return nil
	}
	m.done = true
	return check("MPI_Finalize", C.skd_finalize())
}
