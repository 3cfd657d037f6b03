package kernels

import (
	"math/rand"
	"testing"
)

// BenchmarkMicroKernel measures each micro-kernel alone on cache-resident
// packed panels (the ceiling for Sgemm on one core).
func BenchmarkMicroKernel(b *testing.B) {
	for _, k := range []*microKernel{genericKernel, avx2Kernel, avx512Kernel} {
		if k == nil {
			continue
		}
		b.Run(k.name, func(b *testing.B) {
			r := rand.New(rand.NewSource(1))
			kc := 256
			a := randSlice(r, k.mr*kc)
			bb := randSlice(r, k.nr*kc)
			c := make([]float32, k.mr*k.nr)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k.fn(kc, a, bb, c, k.nr, 1, 1)
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(2*float64(k.mr*k.nr*kc)/sec/1e9, "GFLOP/s")
		})
	}
}
