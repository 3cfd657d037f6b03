package layers

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// Shared scaffolding of the custom ops (besides opBase): reading the
// inputs' data. The flat-index losses share their forward and gradient
// ops too (op_flatloss.go).

// unpack points dst[i] at the float32 data of in[i], for the first
// len(dst) inputs; an error names the op and the input.
func unpack(name string, in []G.Value, dst ...*[]float32) error {
	if len(in) < len(dst) {
		return fmt.Errorf("%s: %d inputs, want %d", name, len(in), len(dst))
	}
	for i, d := range dst {
		v, err := f32(in[i])
		if err != nil {
			return fmt.Errorf("%s: input %d: %w", name, i, err)
		}
		*d = v
	}
	return nil
}
