package kernels

import "fmt"

// FIR64 computes the strided correlation
//
//	dst[j] = sum_t w[t] * src[j + t*stride]   for every j in [0, len(dst))
//
// in float64: with stride 1 a 1-D filter along a row, with stride equal to
// a row length the same filter down the columns of a row-major plane (the
// separable passes of a Gaussian window). src must hold
// (len(w)-1)*stride + len(dst) values; dst must not overlap src. The
// products are accumulated tap by tap with fused multiply-adds (AVX-512F
// or AVX2/FMA assembly on amd64, see UseAssembly; a pure-Go loop
// elsewhere), so the result may differ from the plain sum in the last
// bits.
func FIR64(dst, src []float64, stride int, w []float64) {
	n := len(dst)
	if n == 0 {
		return
	}
	if len(w) == 0 {
		clear(dst)
		return
	}
	if stride < 0 || (len(w)-1)*stride+n > len(src) {
		panic(fmt.Sprintf("kernels: FIR64 of %d outputs with %d taps of stride %d needs %d source values, has %d",
			n, len(w), stride, (len(w)-1)*stride+n, len(src)))
	}
	if fir64Asm != nil && useAsm.Load() {
		fir64Asm(&dst[0], n, &src[0], stride, &w[0], len(w))
		return
	}
	fir64Go(dst, src, stride, w)
}

// fir64Asm is the assembly FIR64 selected at start-up (nil without
// AVX2/FMA or off amd64).
var fir64Asm func(dst *float64, n int, src *float64, stride int, w *float64, taps int)

// fir64Go is FIR64 in Go: blocks of outputs small enough to stay in the
// L1 cache while every tap adds its row segment.
func fir64Go(dst, src []float64, stride int, w []float64) {
	const block = 512
	for lo := 0; lo < len(dst); lo += block {
		d := dst[lo:min(lo+block, len(dst))]
		s := src[lo:][:len(d)]
		w0 := w[0]
		for j := range d {
			d[j] = w0 * s[j]
		}
		for t := 1; t < len(w); t++ {
			s := src[lo+t*stride:][:len(d)]
			wt := w[t]
			for j := range d {
				d[j] += wt * s[j]
			}
		}
	}
}
