package kernels

import (
	"math/rand"
	"testing"
)

// BenchmarkSgemm reports GFLOP/s of Sgemm at a few sizes (square and the
// three GEMM shapes of a 3x3 64->64 convolution at 56x56).
func BenchmarkSgemm(b *testing.B) {
	shapes := []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{
		{"256", false, false, 256, 256, 256},
		{"512", false, false, 512, 512, 512},
		{"1024", false, false, 1024, 1024, 1024},
		{"conv3x3fwd_64x3136x576", false, false, 64, 3136, 576},
		{"conv3x3bwdData_576x3136x64_tA", true, false, 576, 3136, 64},
		{"conv3x3bwdW_64x576x3136_tB", false, true, 64, 576, 3136},
	}
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			r := rand.New(rand.NewSource(1))
			a := randSlice(r, s.m*s.k)
			bb := randSlice(r, s.k*s.n)
			c := make([]float32, s.m*s.n)
			lda, ldb := s.k, s.n
			if s.tA {
				lda = s.m
			}
			if s.tB {
				ldb = s.k
			}
			Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)/sec/1e9, "GFLOP/s")
		})
	}
}
