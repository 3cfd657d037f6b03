package layers

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// flatTerms is what differs between the losses over a flat index space
// (SigmoidBCE, BoxRegression): their targets' check, normaliser and
// per-sample terms. flatLoss and flatGradOp do the rest for both.
type flatTerms interface {
	checkTargets() error
	targetNorm() float32
	setLast(v float64)
	// terms calls emit(g, loss, dloss/dx) for every term whose flat index
	// g lies in [lo, hi), in sample order; x(g) is the input value there.
	terms(lo, hi int, x func(g int) float64, emit func(g int, l, d float64))
}

// flatLoss is the forward op of a flatTerms loss: the sum of its terms
// over the flat concatenation of its inputs, divided by the norm.
type flatLoss struct {
	lossBase
	fs    flatSpace
	need  []bool
	bufs  [][]float32
	impl  flatTerms
	sum   float64
	value func(g int) float64
	add   func(g int, l, d float64)
}

func newFlatLoss(b *Builder, name string, impl flatTerms, xs []*G.Node) *flatLoss {
	op := &flatLoss{lossBase: lossBase{opBase: opBase{name: name, id: b.nextID()}}, fs: newFlatSpace(xs), impl: impl}
	op.bufs = make([][]float32, len(xs))
	for _, x := range xs {
		op.need = append(op.need, b.NeedsGrad(x))
	}
	op.value = func(g int) float64 {
		j, k := op.fs.locate(g)
		return float64(op.bufs[j][k])
	}
	op.add = func(_ int, l, _ float64) { op.sum += l }
	return op
}

func (op *flatLoss) Arity() int         { return len(op.fs.shapes) }
func (op *flatLoss) Type() hm.Type      { return reduceType(op.fs.shapes) }
func (op *flatLoss) DiffWRT(int) []bool { return append([]bool(nil), op.need...) }

func (op *flatLoss) Do(in ...G.Value) (G.Value, error) {
	if err := op.fs.readInputs(op.name, op.bufs, in); err != nil {
		return nil, err
	}
	if err := op.impl.checkTargets(); err != nil {
		return nil, err
	}
	op.sum = 0
	op.impl.terms(0, op.fs.total(), op.value, op.add)
	s := op.sum / normOf(op.impl.targetNorm())
	op.impl.setLast(s)
	return op.result(s), nil
}

// DropArenaViews implements ArenaViewer.
func (op *flatLoss) DropArenaViews() { clear(op.bufs) }

func (op *flatLoss) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	ret := make(G.Nodes, len(inputs))
	for j := range inputs {
		if !op.need[j] {
			continue
		}
		var err error
		gop := &flatGradOp{opBase: opBase{name: fmt.Sprintf("%s.d%d", op.name, j), id: op.id}, fwd: op, j: j}
		gop.value = func(g int) float64 { return float64(gop.x[g-gop.lo]) }
		gop.add = func(g int, _, d float64) { gop.dx[g-gop.lo] += float32(d * gop.scale) }
		if ret[j], err = G.ApplyOp(gop, inputs[j], grad); err != nil {
			return nil, err
		}
	}
	return ret, nil
}

// flatGradOp is the gradient of a flatLoss with respect to its input j:
// (input j, scalar upstream gradient) -> d input j.
type flatGradOp struct {
	opBase
	fwd *flatLoss
	j   int

	// per run
	x, dx []float32
	lo    int
	scale float64
	value func(g int) float64
	add   func(g int, l, d float64)
}

func (op *flatGradOp) Arity() int    { return 2 }
func (op *flatGradOp) Type() hm.Type { return gradType(len(op.fwd.fs.shapes[op.j])) }
func (op *flatGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.fwd.fs.shapes[op.j].Clone(), nil
}
func (op *flatGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *flatGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	f := op.fwd
	var x []float32
	if err := unpack(op.name, in, &x); err != nil {
		return nil, err
	}
	if len(x) != f.fs.shapes[op.j].TotalSize() {
		return nil, fmt.Errorf("%s: input has %d values, graph built for %v", op.name, len(x), f.fs.shapes[op.j])
	}
	g, err := scalarOf(in[1])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	if err := f.impl.checkTargets(); err != nil {
		return nil, err
	}
	out := op.out(prealloc, f.fs.shapes[op.j])
	op.x, op.dx = x, out.Data().([]float32)
	clear(op.dx)
	op.scale = float64(g) / normOf(f.impl.targetNorm())
	op.lo = f.fs.offs[op.j]
	f.impl.terms(op.lo, f.fs.offs[op.j+1], op.value, op.add)
	op.x, op.dx = nil, nil
	return out, nil
}
