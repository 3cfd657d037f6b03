// Package detrand fills tensors with deterministic pseudo-random values
// from a name and an index (splitmix64 over FNV-1a of the name), so that Go
// tests and the Python golden generators (scripts/golden_common.py mirrors
// it bit for bit) build identical weights and inputs without committing
// them.
package detrand

import (
	"hash/fnv"
	"math"
	"strings"
)

// Seed returns the 64-bit FNV-1a hash of name.
func Seed(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// Uniform returns values in [0, 1) with 24 random bits (exact in float32).
func Uniform(name string, n int) []float64 {
	seed := Seed(name)
	out := make([]float64, n)
	for i := range out {
		z := seed + uint64(i+1)*0x9E3779B97F4A7C15
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		z ^= z >> 31
		out[i] = float64(z>>40) / (1 << 24)
	}
	return out
}

// Symmetric returns scale * (2u - 1) as float32.
func Symmetric(name string, n int, scale float64) []float32 {
	u := Uniform(name, n)
	out := make([]float32, n)
	for i, v := range u {
		out[i] = float32((2*v - 1) * scale)
	}
	return out
}

// Affine returns lo + span*u as float32.
func Affine(name string, n int, lo, span float64) []float32 {
	u := Uniform(name, n)
	out := make([]float32, n)
	for i, v := range u {
		out[i] = float32(lo + span*v)
	}
	return out
}

// Param returns the deterministic value of a model parameter, chosen by
// its name suffix and shape (the rule of scripts/golden_common.py):
// weights of rank >= 2 are He-uniform (bound sqrt(6/fan_in)), BN weights
// 0.3+0.5u, BN running_var 0.5+u, biases/BN bias/running_mean 0.1(2u-1).
func Param(name string, shape []int) []float32 {
	n := 1
	for _, d := range shape {
		n *= d
	}
	isBN := strings.Contains(name, "bn") || strings.HasSuffix(name, "downsample.1.weight") ||
		strings.HasSuffix(name, "downsample.1.bias") || strings.Contains(name, "running_")
	switch {
	case strings.HasSuffix(name, "running_var"):
		return Affine(name, n, 0.5, 1)
	case strings.HasSuffix(name, "running_mean"):
		return Symmetric(name, n, 0.1)
	case strings.HasSuffix(name, ".weight") && isBN && len(shape) == 1:
		return Affine(name, n, 0.3, 0.5)
	case len(shape) >= 2:
		fanIn := 1
		for _, d := range shape[1:] {
			fanIn *= d
		}
		return Symmetric(name, n, math.Sqrt(6/float64(fanIn)))
	default:
		return Symmetric(name, n, 0.1)
	}
}
