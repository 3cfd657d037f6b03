//go:build amd64

package kernels

import (
	"os"

	"golang.org/x/sys/cpu"
)

// asmKernel is the AVX2/FMA 6x16 micro-kernel, nil when the CPU lacks
// AVX2 or FMA.
var asmKernel *microKernel

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		asmKernel = &microKernel{
			name: "avx2-fma-6x16",
			mr:   6, nr: 16,
			mc: 144, kc: 256, nc: 3072,
			fn: kernel6x16Asm,
		}
	}
	useAsm.Store(asmKernel != nil && os.Getenv("SKD_NOASM") == "")
}

// sgemmKernel6x16 computes a 6x16 tile C = alpha*Ap*Bp + beta*C (C not read
// when beta == +0) from packed panels; implemented in gemm_amd64.s.
//
//go:noescape
func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

func kernel6x16Asm(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[6*kc-1]
	_ = b[16*kc-1]
	_ = c[5*ldc+15]
	sgemmKernel6x16(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}
