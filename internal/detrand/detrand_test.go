package detrand

import "testing"

// Values pinned from scripts/golden_common.py (python: uniform("abc", 3)).
func TestUniformMatchesPython(t *testing.T) {
	got := Uniform("abc", 3)
	want := pyUniformABC
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Uniform(abc)[%d] = %v, python %v", i, got[i], want[i])
		}
	}
}

var pyUniformABC = []float64{0.16362261772155762, 0.28698402643203735, 0.009036242961883545}
