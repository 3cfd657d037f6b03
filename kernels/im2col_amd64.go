//go:build amd64

package kernels

import "golang.org/x/sys/cpu"

// addTo adds src[i] to dst[i] for i < n (AVX), in gemm_amd64.s.
//
//go:noescape
func addTo(dst, src *float32, n int)

// copyRowsPad writes rows rows of dst (row stride ldd), each lead zeros,
// cnt values from the matching row of src (row stride lds) and trail zeros
// (AVX), in gemm_amd64.s.
//
//go:noescape
func copyRowsPad(dst *float32, ldd int, src *float32, lds int, rows, lead, cnt, trail int)

func init() {
	if cpu.X86.HasAVX {
		addVec = addVecAsm
		rowsPad = rowsPadAsm
	}
}

func rowsPadAsm(dst []float32, ldd int, src []float32, lds, rows, lead, cnt, trail int) {
	if rows <= 0 {
		return
	}
	_ = dst[(rows-1)*ldd+lead+cnt+trail-1]
	if cnt > 0 {
		_ = src[(rows-1)*lds+cnt-1]
	} else {
		src = dst // not read
	}
	copyRowsPad(&dst[0], ldd, &src[0], lds, rows, lead, cnt, trail)
}

func addVecAsm(dst, src []float32) {
	if len(src) == 0 {
		return
	}
	_ = dst[len(src)-1]
	addTo(&dst[0], &src[0], len(src))
}
