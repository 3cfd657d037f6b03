package layers

import (
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var exportedOpSeq atomic.Int64

// OpBase is the common part of custom ops defined outside this package
// (e.g. package kd): a name, a unique id in the hash so that Gorgonia never
// merges two op instances, the Op methods every op here shares, and Out,
// the output-reuse rule of the package's own ops.
type OpBase struct{ opBase }

// NewOpBase returns an OpBase with a process-wide unique id.
func NewOpBase(name string) OpBase {
	return OpBase{opBase{name: name, id: -int(exportedOpSeq.Add(1))}}
}

// Name returns the op's name.
func (o *OpBase) Name() string { return o.name }

// Out returns the tensor to write the op's result into (see opBase.out).
func (o *OpBase) Out(prealloc G.Value, shape tensor.Shape) *tensor.Dense {
	return o.out(prealloc, shape)
}

// Slot returns the op's place in its planned program's arena (nil when
// the program is not planned): see ArenaSizer.
func (o *OpBase) Slot() []float32 {
	if o.slot == nil {
		return nil
	}
	return o.slot.data()
}

// F32 returns a value's float32 data.
func F32(v G.Value) ([]float32, error) { return f32(v) }

// ScalarOf reads a float32 scalar value.
func ScalarOf(v G.Value) (float32, error) { return scalarOf(v) }

// FnType returns the type of an op taking tensors of inDims dimensions and
// returning one of outDims dimensions.
func FnType(outDims int, inDims ...int) hm.Type { return fnType(outDims, inDims...) }
