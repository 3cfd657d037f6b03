package layers

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// dotOp computes the scalar sum(x * w) for a constant w (a test and
// probing loss: its gradient is w times the incoming scalar).
type dotOp struct {
	opBase
	shape tensor.Shape
	w     []float32
	last  float64 // the last value, accumulated in float64
}

func (op *dotOp) Arity() int { return 1 }
func (op *dotOp) Type() hm.Type {
	return hm.NewFnType(G.TensorType{Dims: len(op.shape), Of: hm.TypeVariable('a')}, hm.TypeVariable('a'))
}
func (op *dotOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (op *dotOp) Do(in ...G.Value) (G.Value, error) {
	var x []float32
	err := unpack(op.name, in, &x)
	if err != nil {
		return nil, err
	}
	var s float64
	for i, v := range x {
		s += float64(v) * float64(op.w[i])
	}
	op.last = s
	return G.NewF32(float32(s)), nil
}
func (op *dotOp) DiffWRT(int) []bool { return []bool{true} }
func (op *dotOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&scaleConstOp{opBase: opBase{name: "dot.dx", id: op.id}, shape: op.shape, w: op.w}, grad)
	return G.Nodes{dx}, err
}

// scaleConstOp returns w * g for a scalar g.
type scaleConstOp struct {
	opBase
	shape tensor.Shape
	w     []float32
}

func (op *scaleConstOp) Arity() int { return 1 }
func (op *scaleConstOp) Type() hm.Type {
	return hm.NewFnType(hm.TypeVariable('a'), G.TensorType{Dims: len(op.shape), Of: hm.TypeVariable('a')})
}
func (op *scaleConstOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *scaleConstOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *scaleConstOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	g, err := scalarOf(in[0])
	if err != nil {
		return nil, err
	}
	out := op.out(prealloc, op.shape)
	d := out.Data().([]float32)
	for i, w := range op.w {
		d[i] = w * g
	}
	return out, nil
}

// scalarOf reads a float32 scalar value.
func scalarOf(v G.Value) (float32, error) {
	switch s := v.(type) {
	case *G.F32:
		return float32(*s), nil
	case *tensor.Dense:
		if d, ok := s.Data().([]float32); ok && len(d) == 1 {
			return d[0], nil
		}
		if d, ok := s.Data().(float32); ok {
			return d, nil
		}
	}
	return 0, fmt.Errorf("expected a float32 scalar, got %T", v)
}

// Dot returns the scalar sum(x * w) for a constant w of x's size.
func (b *Builder) Dot(x *G.Node, w []float32) *G.Node {
	if b.err != nil || x == nil {
		return b.Fail(errMissing("dot"))
	}
	if x.Shape().TotalSize() != len(w) {
		return b.Fail(fmt.Errorf("dot: %d weights for shape %v", len(w), x.Shape()))
	}
	return b.apply(&dotOp{opBase: opBase{name: "dot", id: b.nextID()}, shape: x.Shape().Clone(), w: w}, x)
}

// DotValue returns the float64 value of a Dot node's last run (finite
// difference checks need more precision than the float32 node value).
func DotValue(n *G.Node) (float64, bool) {
	op, ok := n.Op().(*dotOp)
	if !ok {
		return 0, false
	}
	return op.last, true
}
