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
// own value is a 1-element placeholder. In a planned program (Arena) there
// is no copy: the plan keeps the input's value to the end of the run, and
// Data returns it in place.
type keepOp struct {
	opBase
	shape tensor.Shape
	data  *tensor.Dense
	view  []float32 // planned programs: the input's value in the arena
}

func (op *keepOp) Arity() int { return 1 }
func (op *keepOp) Type() hm.Type {
	if len(op.shape) == 0 {
		return hm.NewFnType(hm.TypeVariable('a'), hm.TypeVariable('a'))
	}
	return fnType(1, len(op.shape))
}
func (op *keepOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if len(op.shape) == 0 {
		return tensor.ScalarShape(), nil
	}
	return tensor.Shape{1}, nil
}
func (op *keepOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *keepOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var x []float32
	if len(op.shape) == 0 {
		v, err := scalarOf(in[0])
		if err != nil {
			return nil, err
		}
		x = []float32{v}
	} else {
		var err error
		if x, err = f32(in[0]); err != nil {
			return nil, err
		}
	}
	if op.slot != nil && len(op.shape) > 0 {
		// planned: the input lives in the arena to the end of the run
		op.view = x
	} else {
		if op.data == nil {
			op.data = tensor.New(tensor.WithShape(len(x)), tensor.Of(tensor.Float32))
		}
		copy(op.data.Data().([]float32), x)
	}
	if len(op.shape) == 0 {
		return G.NewF32(0), nil
	}
	return op.out(prealloc, tensor.Shape{1}), nil
}

// DropArenaViews implements ArenaViewer.
func (op *keepOp) DropArenaViews() { op.view = nil }

// Kept is a node whose value stays valid after a run.
type Kept struct {
	Node *G.Node
	op   *keepOp
}

// Data returns the kept values of the last run (owned by the op, or in a
// planned program the arena's, valid until the arena's next run; copy
// them to keep them longer).
func (k *Kept) Data() []float32 {
	if k.op.view != nil {
		return k.op.view
	}
	if k.op.data == nil {
		return nil
	}
	return k.op.data.Data().([]float32)
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

// DiffWRT says keep is not differentiated (it is a side output), which
// also tells Gorgonia's analysis that nothing is lost by skipping it.
func (op *keepOp) DiffWRT(n int) []bool { return make([]bool, n) }

// SymDiff is never called for a non-differentiable input.
func (op *keepOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return make(G.Nodes, len(inputs)), nil
}
