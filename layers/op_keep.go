package layers

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// keepOp copies its input into a tensor owned by the op, so that a
// feature map can be read after the machine has run. Gorgonia reuses the
// register of any node once its last reader ran (a terminal node's
// interval ends where it is computed), so the value bound to a node is not
// reliable after RunAll. The copy is never handed to Gorgonia: the node's
// own value is a 1-element placeholder.
type keepOp struct {
	opBase
	shape tensor.Shape
	out   *tensor.Dense
}

func (op *keepOp) Arity() int                                     { return 1 }
func (op *keepOp) Type() hm.Type                                  { return fnType(len(op.shape), len(op.shape)) }
func (op *keepOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *keepOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *keepOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	x, err := f32(in[0])
	if err != nil {
		return nil, err
	}
	if op.out == nil {
		op.out = tensor.New(tensor.WithShape(op.shape.Clone()...), tensor.Of(tensor.Float32))
	}
	copy(op.out.Data().([]float32), x)
	return output(prealloc, tensor.Shape{1}), nil
}

// Kept is a node whose value stays valid after a run.
type Kept struct {
	Node *G.Node
	op   *keepOp
}

// Data returns the kept values of the last run (owned by the op; copy
// them to keep them across runs).
func (k *Kept) Data() []float32 {
	if k.op.out == nil {
		return nil
	}
	return k.op.out.Data().([]float32)
}

// Shape returns the kept tensor's shape.
func (k *Kept) Shape() []int { return []int(k.op.shape) }

// Keep adds a copy of x that can be read after RunAll. It takes no part
// in differentiation.
func (b *Builder) Keep(x *G.Node) *Kept {
	if b.err != nil || x == nil {
		b.Fail(errMissing("keep"))
		return &Kept{op: &keepOp{}}
	}
	op := &keepOp{opBase: opBase{name: "keep", id: b.nextID()}, shape: x.Shape().Clone()}
	n, err := G.ApplyOp(op, x)
	if err != nil {
		b.Fail(err)
	}
	return &Kept{Node: n, op: op}
}
