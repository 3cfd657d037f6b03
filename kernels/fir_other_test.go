//go:build !amd64

package kernels

var firExtra map[string]func(dst *float64, n int, src *float64, stride int, w *float64, taps int)
