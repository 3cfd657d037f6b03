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

// scatterPanels copies npanels blocks of nvec*8 values from src to dst,
// the blocks dstStride bytes apart (AVX), in gemm_amd64.s.
//
//go:noescape
func scatterPanels(src, dst *float32, nvec, npanels, dstStride int)

func init() {
	if cpu.X86.HasAVX {
		addVec = addVecAsm
		rowsPad = rowsPadAsm
		panelRows = panelRowsAsm
	}
}

func panelRowsAsm(src, dst []float32, nr, kc, npanels int) {
	if npanels <= 0 {
		return
	}
	if nr%8 != 0 {
		panelRowsGo(src, dst, nr, kc, npanels)
		return
	}
	_ = src[npanels*nr-1]
	_ = dst[(npanels-1)*nr*kc+nr-1]
	scatterPanels(&src[0], &dst[0], nr/8, npanels, 4*nr*kc)
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
