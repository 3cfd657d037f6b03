//go:build amd64

package kernels

import "golang.org/x/sys/cpu"

// firExtra: the assembly kernels other than the selected one.
var firExtra = func() map[string]func(dst *float64, n int, src *float64, stride int, w *float64, taps int) {
	m := map[string]func(dst *float64, n int, src *float64, stride int, w *float64, taps int){}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		m["avx2"] = fir64AVX2
	}
	if cpu.X86.HasAVX512F {
		m["avx512"] = fir64AVX512
	}
	return m
}()
