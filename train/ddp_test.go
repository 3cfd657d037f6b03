package train

import (
	"math"
	"sync"
	"testing"
	"time"

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

// TestGradReducerOverlapEqualsAverage: the buckets started one by one on
// the communication goroutine (as the backward pass reports them), with a
// blocking collective in between (SyncBN), then finished, give bit for
// bit what Average gives after the backward pass.
func TestGradReducerOverlapEqualsAverage(t *testing.T) {
	sizes := []int{5, 1, 17, 3, 40, 2, 9, 33}
	make3 := func(r int) [][]float32 {
		grads := make([][]float32, len(sizes))
		for i, n := range sizes {
			grads[i] = make([]float32, n)
			for j := range grads[i] {
				grads[i][j] = float32(math.Sin(float64(1+r*1000+i*100+j))) / 3
			}
		}
		return grads
	}
	results := [2][][][]float32{}
	for mode := range 2 {
		ws := dist.Local(3)
		out := make([][][]float32, 3)
		var wg sync.WaitGroup
		for r := range ws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				grads := make3(r)
				red := GradReducer{W: ws[r], BucketBytes: 4 * 20}
				if mode == 0 {
					if err := red.Average(grads); err != nil {
						t.Error(err)
					}
					out[r] = grads
					return
				}
				if err := ws[r].EnableAsync(0); err != nil {
					t.Error(err)
				}
				spans := red.buckets(lengths(grads))
				for k := range spans {
					red.start(k, spans, func(i int) []float32 { return grads[i] })
					if err := ws[r].AllreduceSumFloat64([]float64{1}); err != nil {
						t.Error(err)
					}
				}
				cs, err := red.finish(grads, time.Now())
				if err != nil || cs.Buckets != len(spans) || len(spans) < 4 {
					t.Errorf("rank %d: %v, %+v for %d buckets", r, err, cs, len(spans))
				}
				out[r] = grads
			}()
		}
		wg.Wait()
		results[mode] = out
	}
	for r := range 3 {
		for i := range sizes {
			for j := range results[0][r][i] {
				a, b := results[0][r][i][j], results[1][r][i][j]
				if math.Float32bits(a) != math.Float32bits(b) {
					t.Fatalf("rank %d grad %d[%d]: overlapped %v, after the backward pass %v", r, i, j, b, a)
				}
			}
		}
	}
}
