package layers

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// HostFunc computes a host op's output from its inputs' values (flat
// float32 data, in input order). out is zeroed before the call.
type HostFunc func(in [][]float32, out []float32) error

// hostOp runs plain Go code inside the graph, at its place in execution
// order: proposal filtering and RoI sampling between the RPN and the RoI
// heads. It is not differentiated (torchvision detaches proposals too).
type hostOp struct {
	opBase
	shape  tensor.Shape
	inDims []int
	fn     HostFunc
	bufs   [][]float32
}

func (op *hostOp) Arity() int                                     { return len(op.inDims) }
func (op *hostOp) Type() hm.Type                                  { return fnType(len(op.shape), op.inDims...) }
func (op *hostOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *hostOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *hostOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if op.bufs == nil {
		op.bufs = make([][]float32, len(in))
	}
	for i, v := range in {
		d, err := f32(v)
		if err != nil {
			return nil, fmt.Errorf("%s: input %d: %w", op.name, i, err)
		}
		op.bufs[i] = d
	}
	out := op.out(prealloc, op.shape)
	o := out.Data().([]float32)
	for i := range o {
		o[i] = 0
	}
	if err := op.fn(op.bufs, o); err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	return out, nil
}
func (op *hostOp) DiffWRT(n int) []bool { return make([]bool, n) }

// DropArenaViews implements ArenaViewer.
func (op *hostOp) DropArenaViews() {
	for i := range op.bufs {
		op.bufs[i] = nil
	}
}
func (op *hostOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return make(G.Nodes, len(inputs)), nil
}

// Host adds a node whose value fn computes on the host from the inputs'
// values; the output has the given shape and no gradient flows through it.
func (b *Builder) Host(name string, shape []int, fn HostFunc, inputs ...*G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	op := &hostOp{opBase: opBase{name: name, id: b.nextID()}, shape: tensor.Shape(shape).Clone(), fn: fn}
	for i, in := range inputs {
		if in == nil {
			return b.Fail(fmt.Errorf("%s: input %d is missing", name, i))
		}
		op.inDims = append(op.inDims, in.Shape().Dims())
	}
	out, err := G.ApplyOp(op, inputs...)
	if err != nil {
		return b.Fail(fmt.Errorf("%s: %w", name, err))
	}
	return out
}
