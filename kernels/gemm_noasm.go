//go:build !amd64

package kernels

// asmKernel is nil where no assembly micro-kernel exists.
var asmKernel *microKernel
