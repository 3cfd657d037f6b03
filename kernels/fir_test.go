package kernels

import (
	"math"
	"math/rand"
	"testing"
)

// firNaive is FIR64's definition, one output at a time.
func firNaive(dst, src []float64, stride int, w []float64) {
	for j := range dst {
		var s float64
		for t, wt := range w {
			s += wt * src[j+t*stride]
		}
		dst[j] = s
	}
}

// firImpls lists every FIR64 implementation this CPU can run.
func firImpls() map[string]func(dst, src []float64, stride int, w []float64) {
	impls := map[string]func(dst, src []float64, stride int, w []float64){"go": fir64Go}
	add := func(name string, f func(dst *float64, n int, src *float64, stride int, w *float64, taps int)) {
		impls[name] = func(dst, src []float64, stride int, w []float64) {
			f(&dst[0], len(dst), &src[0], stride, &w[0], len(w))
		}
	}
	if fir64Asm != nil {
		add("asm", fir64Asm)
	}
	for name, f := range firExtra {
		add(name, f)
	}
	return impls
}

// TestFIR64 compares every implementation with the definition on
// lengths around the vector and block sizes, 1 to 13 taps and row and
// column strides; the values agree to float64 rounding.
func TestFIR64(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for name, f := range firImpls() {
		for _, n := range []int{1, 3, 4, 7, 8, 9, 31, 32, 33, 63, 64, 65, 130, 517, 1200} {
			for _, taps := range []int{1, 2, 5, 11, 13} {
				for _, stride := range []int{0, 1, 7, 90} {
					w := make([]float64, taps)
					for i := range w {
						w[i] = rng.Float64()
					}
					src := make([]float64, (taps-1)*stride+n+5)
					for i := range src {
						src[i] = rng.NormFloat64()
					}
					got := make([]float64, n+2)
					got[n], got[n+1] = 7, 7 // guards: must stay untouched
					want := make([]float64, n)
					f(got[:n], src, stride, w)
					firNaive(want, src, stride, w)
					for j := range want {
						var scale float64
						for tt := range w {
							scale += math.Abs(w[tt] * src[j+tt*stride])
						}
						if math.Abs(got[j]-want[j]) > 1e-15*scale {
							t.Fatalf("%s n %d taps %d stride %d: out[%d] = %v, want %v", name, n, taps, stride, j, got[j], want[j])
						}
					}
					if got[n] != 7 || got[n+1] != 7 {
						t.Fatalf("%s n %d taps %d stride %d: wrote past the output", name, n, taps, stride)
					}
				}
			}
		}
	}
}

func TestFIR64Checks(t *testing.T) {
	dst := []float64{9, 9}
	FIR64(dst, nil, 1, nil)
	if dst[0] != 0 || dst[1] != 0 {
		t.Fatalf("no taps: %v, want zeros", dst)
	}
	FIR64(nil, nil, 1, []float64{1}) // no outputs: nothing to check
	defer func() {
		if recover() == nil {
			t.Fatal("short source: no panic")
		}
	}()
	FIR64(make([]float64, 4), make([]float64, 5), 1, []float64{1, 1, 1})
}
