//go:build amd64

package kernels

import "golang.org/x/sys/cpu"

// addTo adds src[i] to dst[i] for i < n (AVX), in gemm_amd64.s.
//
//go:noescape
func addTo(dst, src *float32, n int)

func init() {
	if cpu.X86.HasAVX {
		addVec = addVecAsm
	}
}

func addVecAsm(dst, src []float32) {
	if len(src) == 0 {
		return
	}
	_ = dst[len(src)-1]
	addTo(&dst[0], &src[0], len(src))
}
