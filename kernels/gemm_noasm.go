//go:build !amd64

package kernels

// No assembly micro-kernels outside amd64.
var avx2Kernel, avx512Kernel, asmKernel *microKernel
