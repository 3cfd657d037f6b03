package dist

import (
	"fmt"
	"testing"
)

// checkAsync interleaves asynchronous allreduces with blocking
// collectives, as a data-parallel step does (gradient buckets in flight
// while SyncBN reduces its statistics), then runs every collective through
// the communication goroutine. Each rank issues them in the same order;
// the funnel must keep that order on every rank.
func checkAsync(w *World, nice int) error {
	r, n := w.Rank(), w.Size()
	if err := w.EnableAsync(nice); err != nil {
		return err
	}
	if w.Async() != (n > 1) {
		return fmt.Errorf("rank %d: Async() = %v with %d ranks", r, w.Async(), n)
	}
	big := make([]float32, 1<<16)
	small := make([]float32, 7)
	for i := range big {
		big[i] = float32(r + i%5)
	}
	for i := range small {
		small[i] = float32(r * i)
	}
	a := w.AllreduceSumAsync(big)
	stat := []float64{float64(r + 1)}
	if err := w.AllreduceSumFloat64(stat); err != nil {
		return err
	}
	b := w.AllreduceSumAsync(small)
	if err := a.Wait(); err != nil {
		return err
	}
	if err := b.Wait(); err != nil {
		return err
	}
	if a.End.Before(a.Start) || b.Start.Before(a.End) {
		return fmt.Errorf("rank %d: requests ran at %v-%v and %v-%v, not in order", r, a.Start, a.End, b.Start, b.End)
	}
	ranks := float32(n * (n - 1) / 2)
	for i, v := range big {
		if want := ranks + float32(n*(i%5)); v != want {
			return fmt.Errorf("rank %d: async allreduce[%d] = %v, want %v", r, i, v, want)
		}
	}
	for i, v := range small {
		if want := ranks * float32(i); v != want {
			return fmt.Errorf("rank %d: second async allreduce[%d] = %v, want %v", r, i, v, want)
		}
	}
	if want := float64(n * (n + 1) / 2); stat[0] != want {
		return fmt.Errorf("rank %d: blocking allreduce between async ones = %v, want %v", r, stat[0], want)
	}
	return checkCollectives(w)
}

func TestLocalAsync(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		runLocal(t, n, func(w *World) error {
			if err := checkAsync(w, 0); err != nil {
				return err
			}
			// a second finalize is harmless (the goroutine stopped once)
			if err := w.Finalize(); err != nil {
				return err
			}
			return w.Finalize()
		})
	}
}

func TestSingleAsyncRunsAtOnce(t *testing.T) {
	w := Single()
	if err := w.EnableAsync(0); err != nil {
		t.Fatal(err)
	}
	buf := []float32{3}
	if err := w.AllreduceSumAsync(buf).Wait(); err != nil || buf[0] != 3 || w.Async() {
		t.Fatalf("one rank: %v %v async=%v", err, buf, w.Async())
	}
}
