//go:build amd64

package kernels

import (
	"os"

	"golang.org/x/sys/cpu"
)

// FIR64's assembly (fir_amd64.s, written by hand): AVX-512F where the CPU
// supports it (unless SKD_NOAVX512 is set), otherwise AVX2/FMA.
func init() {
	switch {
	case cpu.X86.HasAVX512F && os.Getenv("SKD_NOAVX512") == "":
		fir64Asm = fir64AVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		fir64Asm = fir64AVX2
	}
}

// fir64AVX512 is FIR64 on n >= 1 outputs and taps >= 1 (stride in values):
// 64 outputs per step in eight zmm accumulators, then 8, then one.
//
//go:noescape
func fir64AVX512(dst *float64, n int, src *float64, stride int, w *float64, taps int)

// fir64AVX2 is fir64AVX512 with ymm registers (32, 4, then 1 outputs).
//
//go:noescape
func fir64AVX2(dst *float64, n int, src *float64, stride int, w *float64, taps int)
