// Package kernels holds the numeric kernels of the project: a packed,
// cache-blocked, parallel SGEMM (AVX2/FMA assembly with a pure-Go fallback),
// im2col/col2im and convolution forward/backward, pooling and friends, and
// FIR64, a float64 strided FIR (AVX-512 or AVX2/FMA assembly) for the
// separable filter passes of the SSIM loss.
//
// It is a leaf package: plain []float32 slices in NCHW layout (float64 for
// FIR64), no graphs,
// no training. The graph layer (package layers) wraps these kernels as
// Gorgonia ops.
package kernels
