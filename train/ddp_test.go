package train

import (
	"sync"
	"testing"

	"github.com/skd-go/skd/dist"
)

// TestGradReducerAverages: 3 ranks, gradients of several sizes, buckets
// small enough that each holds one to three gradients: every rank ends
// with the exact mean.
func TestGradReducerAverages(t *testing.T) {
	sizes := []int{5, 1, 17, 3, 40, 2, 9}
	ws := dist.Local(3)
	out := make([][][]float32, 3)
	var wg sync.WaitGroup
	for r := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			grads := make([][]float32, len(sizes))
			for i, n := range sizes {
				grads[i] = make([]float32, n)
				for j := range grads[i] {
					grads[i][j] = float32((r + 1) * (100*i + j))
				}
			}
			red := GradReducer{W: ws[r], BucketBytes: 4 * 20}
			if err := red.Average(grads); err != nil {
				t.Error(err)
				return
			}
			out[r] = grads
		}()
	}
	wg.Wait()
	for r := range out {
		for i, g := range out[r] {
			for j, v := range g {
				if want := float32(2 * (100*i + j)); v != want {
					t.Fatalf("rank %d grad %d[%d] = %v, want %v", r, i, j, v, want)
				}
			}
		}
	}
}
