//go:build mpi

package dist

import (
	"os"
	"os/exec"
	"testing"
)

// TestMPICollectives starts itself as 3 MPI ranks (mpirun must be on
// PATH) and checks every collective on each, first called directly, then
// through the communication goroutine (EnableAsync) with asynchronous
// allreduces in flight.
func TestMPICollectives(t *testing.T) {
	if os.Getenv("SKD_DIST_CHILD") == "1" {
		w, err := Init()
		if err != nil {
			t.Fatal(err)
		}
		if w.Size() != 3 {
			t.Fatalf("world of %d ranks, want 3", w.Size())
		}
		if err := checkCollectives(w); err != nil {
			t.Fatal(err)
		}
		// then with the communication goroutine (gradient overlap)
		if err := checkAsync(w, 5); err != nil {
			t.Fatal(err)
		}
		if err := w.Finalize(); err != nil {
			t.Fatal(err)
		}
		return
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun not on PATH")
	}
	cmd := exec.Command(mpirun, "-np", "3", "--oversubscribe", "--allow-run-as-root", "-x", "SKD_DIST_CHILD=1",
		os.Args[0], "-test.run=^TestMPICollectives$", "-test.v")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestMPIKeepsGoSignalHandlers: after MPI_Init a nil dereference is still
// a recoverable Go panic. (OpenMPI 4.1 leaves an existing SIGSEGV handler
// alone even with opal_signal set; initWorld also clears opal_signal, for
// versions that do not. The test guards either going wrong.)
func TestMPIKeepsGoSignalHandlers(t *testing.T) {
	if os.Getenv("SKD_DIST_CHILD") == "1" {
		w, err := Init()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Finalize()
		recovered := func() (ok bool) {
			defer func() { ok = recover() != nil }()
			var p *World
			_ = p.c
			return false
		}()
		if !recovered {
			t.Fatal("nil dereference did not panic")
		}
		return
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun not on PATH")
	}
	cmd := exec.Command(mpirun, "-np", "2", "--oversubscribe", "--allow-run-as-root", "-x", "SKD_DIST_CHILD=1",
		os.Args[0], "-test.run=^TestMPIKeepsGoSignalHandlers$")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mpirun: %v\n%s", err, out)
	}
}
