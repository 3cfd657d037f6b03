package weights

import (
	"math"
	"path/filepath"
	"testing"
)

// Half-precision files round-trip through LoadSafetensors within float16's
// rounding (relative 2^-11 for normal values), are half the size of the
// data, and refuse values float16 cannot hold.
func TestSaveSafetensorsF16(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.safetensors")
	sd := StateDict{
		"a.weight": {Shape: []int{2, 3}, Data: []float32{1, -2.5, 0.1, 3.14159, 1e-3, 65504}},
		"b.var":    {Shape: []int{2}, Data: []float32{1e-6, 0}},
	}
	if err := SaveSafetensorsF16(p, sd, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	got, meta, err := LoadSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	if meta["k"] != "v" || len(got) != 2 {
		t.Fatalf("meta %v, %d tensors", meta, len(got))
	}
	for k, want := range sd {
		g := got[k]
		for i, x := range want.Data {
			tol := math.Abs(float64(x)) * math.Pow(2, -11)
			if x != 0 && math.Abs(float64(x)) < 6.1e-5 {
				tol = math.Pow(2, -24) // subnormal spacing
			}
			if d := math.Abs(float64(g.Data[i] - x)); d > tol {
				t.Errorf("%s[%d]: %v, want %v (diff %g)", k, i, g.Data[i], x, d)
			}
		}
	}
	if got["a.weight"].Data[0] != 1 || got["a.weight"].Data[1] != -2.5 || got["a.weight"].Data[5] != 65504 {
		t.Errorf("exact values changed: %v", got["a.weight"].Data)
	}
	if err := SaveSafetensorsF16(p, StateDict{"x": {Shape: []int{1}, Data: []float32{1e5}}}, nil); err == nil {
		t.Error("1e5 accepted")
	}
}
