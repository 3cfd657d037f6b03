//go:build amd64

package kernels

import (
	"os"

	"golang.org/x/sys/cpu"
)

//go:generate go run gemm_asmgen.go

// The assembly micro-kernels (gemm_amd64.s): AVX-512F 8x48 where the CPU
// and OS support it, otherwise AVX2/FMA 6x16. SKD_NOAVX512=1 forces the
// AVX2 kernel; SKD_NOASM=1 forces the pure-Go kernel.
var (
	avx2Kernel   *microKernel
	avx512Kernel *microKernel
	asmKernel    *microKernel
)

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		avx2Kernel = &microKernel{
			name: "avx2-fma-6x16",
			mr:   6, nr: 16,
			mc: 144, kc: 256, nc: 3072,
			fn: kernel6x16Asm,
		}
		asmKernel = avx2Kernel
	}
	if cpu.X86.HasAVX512F {
		avx512Kernel = &microKernel{
			name: "avx512-8x48",
			mr:   8, nr: 48,
			mc: 128, kc: 256, nc: 3072,
			fn: kernel8x48Asm,
		}
		if os.Getenv("SKD_NOAVX512") == "" {
			asmKernel = avx512Kernel
		}
	}
	useAsm.Store(asmKernel != nil && os.Getenv("SKD_NOASM") == "")
	if cpu.X86.HasAVX {
		transpose8 = transpose8Asm
		pack6 = pack6Asm
	}
}

// transpose8x8 writes the transpose of the 8x8 block at src (row stride
// lds) to dst (row stride ldd); AVX, in gemm_amd64.s.
//
//go:noescape
func transpose8x8(src *float32, lds int, dst *float32, ldd int)

func transpose8Asm(src []float32, lds int, dst []float32, ldd int) {
	_ = src[7*lds+7]
	_ = dst[7*ldd+7]
	transpose8x8(&src[0], lds, &dst[0], ldd)
}

// pack6x8 writes the transpose of the 6x8 block at src (row stride lds) to
// dst as 8 rows of 6 values (48 values); AVX, in gemm_amd64.s.
//
//go:noescape
func pack6x8(src *float32, lds int, dst *float32)

func pack6Asm(src []float32, lds int, dst []float32) {
	_ = src[5*lds+7]
	_ = dst[47]
	pack6x8(&src[0], lds, &dst[0])
}

// sgemmKernel6x16 computes a 6x16 tile C = alpha*Ap*Bp + beta*C (C not read
// when beta == +0) from packed panels; AVX2/FMA, in gemm_amd64.s.
//
//go:noescape
func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// sgemmKernel8x48 is the AVX-512F 8x48 tile kernel, in gemm_amd64.s.
//
//go:noescape
func sgemmKernel8x48(kc int, a, b, c *float32, ldc int, alpha, beta float32)

func kernel6x16Asm(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[6*kc-1]
	_ = b[16*kc-1]
	_ = c[5*ldc+15]
	sgemmKernel6x16(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}

func kernel8x48Asm(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[8*kc-1]
	_ = b[48*kc-1]
	_ = c[7*ldc+47]
	sgemmKernel8x48(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}
