package dist

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// checkCollectives runs every collective on w and checks the values
// (the same check for Local worlds and for MPI ranks).
func checkCollectives(w *World) error {
	r, n := w.Rank(), w.Size()
	// allreduce: rank r contributes (r+1)*(i+1)
	buf := make([]float32, 1000)
	for i := range buf {
		buf[i] = float32((r + 1) * (i + 1))
	}
	if err := w.AllreduceSum(buf); err != nil {
		return err
	}
	tri := float32(n * (n + 1) / 2)
	for i, v := range buf {
		if v != tri*float32(i+1) {
			return fmt.Errorf("rank %d: allreduce[%d] = %v, want %v", r, i, v, tri*float32(i+1))
		}
	}
	d := []float64{float64(r), 0.5}
	if err := w.AllreduceSumFloat64(d); err != nil {
		return err
	}
	if d[0] != float64(n*(n-1)/2) || d[1] != 0.5*float64(n) {
		return fmt.Errorf("rank %d: float64 allreduce %v", r, d)
	}
	m := []float32{float32(r)}
	if err := w.AllreduceMean(m); err != nil {
		return err
	}
	if m[0] != float32(n-1)/2 {
		return fmt.Errorf("rank %d: mean %v", r, m[0])
	}
	// broadcast from the last rank
	root := n - 1
	bc := []float32{float32(r), float32(r * 2)}
	if err := w.Broadcast(bc, root); err != nil {
		return err
	}
	if bc[0] != float32(root) || bc[1] != float32(2*root) {
		return fmt.Errorf("rank %d: broadcast %v", r, bc)
	}
	var msg []byte
	if r == 0 {
		msg = []byte("hello from rank 0")
	}
	got, err := w.BroadcastBytes(msg, 0)
	if err != nil {
		return err
	}
	if string(got) != "hello from rank 0" {
		return fmt.Errorf("rank %d: broadcast bytes %q", r, got)
	}
	if err := w.Barrier(); err != nil {
		return err
	}
	// gather / allgather with different lengths (rank 0 sends nothing)
	mine := bytes.Repeat([]byte{byte('a' + r)}, r)
	all, err := w.Allgather(mine)
	if err != nil {
		return err
	}
	g, err := w.Gather(mine, 0)
	if err != nil {
		return err
	}
	if r == 0 && len(g) != n || r != 0 && g != nil {
		return fmt.Errorf("rank %d: gather gave %d parts", r, len(g))
	}
	for q := 0; q < n; q++ {
		want := bytes.Repeat([]byte{byte('a' + q)}, q)
		if !bytes.Equal(all[q], want) {
			return fmt.Errorf("rank %d: allgather[%d] = %q", r, q, all[q])
		}
		if r == 0 && !bytes.Equal(g[q], want) {
			return fmt.Errorf("rank 0: gather[%d] = %q", q, g[q])
		}
	}
	// Agree: no error, then an error on the last rank only
	if err := w.Agree(nil); err != nil {
		return fmt.Errorf("rank %d: agree(nil) = %v", r, err)
	}
	var mineErr error
	if r == n-1 {
		mineErr = errors.New("cannot read train.json")
	}
	aerr := w.Agree(mineErr)
	if n > 1 || r == n-1 {
		want := fmt.Sprintf("rank %d: cannot read train.json", n-1)
		if n == 1 {
			want = "cannot read train.json"
		}
		if aerr == nil || aerr.Error() != want {
			return fmt.Errorf("rank %d: agree = %v, want %q", r, aerr, want)
		}
	}
	if err := w.Broadcast([]float32{1}, n); err == nil || !strings.Contains(err.Error(), "out of range") {
		return fmt.Errorf("rank %d: broadcast from rank %d gave %v", r, n, err)
	}
	return nil
}

func runLocal(t *testing.T, n int, f func(w *World) error) {
	t.Helper()
	ws := Local(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = f(ws[r])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestLocalCollectives(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		runLocal(t, n, checkCollectives)
	}
}

func TestSingle(t *testing.T) {
	if err := checkCollectives(Single()); err != nil {
		t.Fatal(err)
	}
}

func TestLocalAbortReleasesWaiters(t *testing.T) {
	ws := Local(3)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for r := 1; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r-1] = ws[r].AllreduceSum([]float32{1})
		}()
	}
	ws[0].Abort(1)
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, ErrAborted) {
			t.Errorf("waiting rank got %v, want ErrAborted", err)
		}
	}
}

func TestLauncherSize(t *testing.T) {
	t.Setenv("OMPI_COMM_WORLD_SIZE", "")
	t.Setenv("PMI_SIZE", "")
	t.Setenv("PMIX_SIZE", "")
	t.Setenv("SLURM_STEP_NUM_TASKS", "")
	if n := LauncherSize(); n != 1 {
		t.Fatalf("no launcher: %d", n)
	}
	t.Setenv("PMI_SIZE", "4")
	if n := LauncherSize(); n != 4 {
		t.Fatalf("PMI_SIZE=4: %d", n)
	}
}

func TestCountCPUList(t *testing.T) {
	for s, want := range map[string]int{"0-3": 4, "0": 1, "0-3,8,10-11": 7, "x": 0} {
		if got := countCPUList(s); got != want {
			t.Errorf("%q: %d, want %d", s, got, want)
		}
	}
}

func TestSetThreadsKeepsExplicit(t *testing.T) {
	t.Setenv("GOMAXPROCS", "1")
	if _, why := SetThreads(); why != "GOMAXPROCS=1" {
		t.Fatalf("explicit GOMAXPROCS: %q", why)
	}
}
