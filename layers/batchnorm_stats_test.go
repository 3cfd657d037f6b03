package layers

import (
	"math"
	"math/rand"
	"testing"
)

// TestShiftedSumsLargeMean: the one-pass statistics of the training-mode BN
// forward keep the variance of values with a mean 1e4 times their spread
// (float64 two-pass reference), and gradSums matches a float64 loop.
func TestShiftedSumsLargeMean(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, n := range []int{1, 3, 255, 256, 257, 1000, 6400} {
		x := make([]float32, n)
		g := make([]float32, n)
		for i := range x {
			x[i] = 1e4 + float32(r.NormFloat64())
			g[i] = float32(r.NormFloat64())
		}
		var m float64
		for _, v := range x {
			m += float64(v)
		}
		m /= float64(n)
		var ss, sg, sgx float64
		for i, v := range x {
			ss += (float64(v) - m) * (float64(v) - m)
			sg += float64(g[i])
			sgx += float64(g[i]) * (float64(v) - float64(float32(m)))
		}
		shift := x[0]
		s1, s2 := shiftedSums(x, shift)
		mean := float64(shift) + s1/float64(n)
		gotSS := max(0, s2-s1*s1/float64(n))
		if math.Abs(mean-m) > 1e-6*math.Abs(m) {
			t.Fatalf("n=%d: mean %v, want %v", n, mean, m)
		}
		if math.Abs(gotSS-ss) > 1e-4*ss+1e-6 {
			t.Fatalf("n=%d: centred sum of squares %v, want %v", n, gotSS, ss)
		}
		a, b := gradSums(x, g, float32(m))
		if math.Abs(a-sg) > 1e-5*(1+math.Abs(sg)) || math.Abs(b-sgx) > 1e-4*(1+math.Abs(sgx)) {
			t.Fatalf("n=%d: gradSums %v %v, want %v %v", n, a, b, sg, sgx)
		}
	}
}
