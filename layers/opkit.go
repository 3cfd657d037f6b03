package layers

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
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

// sig is the signature of an op whose output shape is fixed when the op
// is built (the backward ops, the fixed-size forward ones): its inputs'
// ranks and its output shape. Embedded next to opBase, it provides Arity,
// Type and InferShape; the op provides Do and UsePreallocDo.
type sig struct {
	inDims []int
	shape  tensor.Shape
}

func newSig(shape tensor.Shape, inDims ...int) sig {
	return sig{inDims: inDims, shape: shape.Clone()}
}

func (s *sig) Arity() int                                     { return len(s.inDims) }
func (s *sig) Type() hm.Type                                  { return fnType(len(s.shape), s.inDims...) }
func (s *sig) InferShape(...G.DimSizer) (tensor.Shape, error) { return s.shape.Clone(), nil }
