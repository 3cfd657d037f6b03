package layers

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/kernels"
)

// Linear is a fully connected layer's parameters, stored as torchvision's
// nn.Linear: `name.weight` [Out, In] and `name.bias` [Out] (Bias may be
// nil for a layer without bias).
type Linear struct {
	Name         string
	Weight, Bias *Param
	In, Out      int
}

// NewLinear registers name.weight [out, in] and name.bias [out] (the bias
// is excluded from weight decay, as Conv2d's). Like NewConv2d it leaves
// them zero: the model initialises them (InitDefault for torch's
// nn.Linear default, InitNormal for the box predictor) or loads weights.
func NewLinear(reg *Registry, name string, in, out int) *Linear {
	l := &Linear{Name: name, In: in, Out: out}
	l.Weight = reg.Add(name+".weight", out, in)
	l.Bias = reg.Add(name+".bias", out)
	l.Bias.NoDecay = true
	return l
}

// InitDefault draws the parameters as torch.nn.Linear.reset_parameters:
// weight kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), and
// bias U(-1/sqrt(in), 1/sqrt(in)) (torchvision's fc6/fc7).
func (l *Linear) InitDefault(rng *rand.Rand) {
	KaimingUniform(l.Weight, math.Sqrt(5), rng)
	if l.Bias != nil && l.In > 0 {
		bound := 1 / math.Sqrt(float64(l.In))
		d := l.Bias.Data()
		for i := range d {
			d[i] = float32((rng.Float64()*2 - 1) * bound)
		}
	}
}

// InitNormal sets the weight to N(0, std^2) and the bias to 0: the box
// predictor's init (cls_score std 0.01, bbox_pred std 0.001, as
// detectron2's FastRCNNOutputLayers; torchvision keeps nn.Linear's default).
func (l *Linear) InitNormal(std float64, rng *rand.Rand) {
	Normal(l.Weight, std, rng)
	if l.Bias != nil {
		Constant(l.Bias, 0)
	}
}

// Linear applies y = x W^T + b, then ReLU when relu is set. x is
// [K, d1, d2, ...] of any rank >= 2 and is read as the [K, d1*d2*...]
// matrix it is in memory (no Gorgonia Reshape, whose views alias registers);
// d1*d2*... must equal l.In. The output is [K, l.Out]. Gradients are built
// for x only when it needs one, and for the weight and bias only when they
// are trainable.
func (b *Builder) Linear(x *G.Node, l *Linear, relu bool) *G.Node {
	if b.err != nil || x == nil {
		return b.Fail(fmt.Errorf("%s: missing input", l.Name))
	}
	s := x.Shape()
	if len(s) < 2 {
		return b.Fail(fmt.Errorf("%s: input shape %v, want rank >= 2 (K x features...)", l.Name, s))
	}
	if f := s[1:].TotalSize(); f != l.In {
		return b.Fail(fmt.Errorf("%s: input shape %v has %d features per row, layer takes %d", l.Name, s, f, l.In))
	}
	if ws := l.Weight.Shape(); len(ws) != 2 || ws[0] != l.Out || ws[1] != l.In {
		return b.Fail(fmt.Errorf("%s: weight shape %v, want [%d %d]", l.Name, ws, l.Out, l.In))
	}
	op := &linearOp{opBase: opBase{name: "linear(" + l.Name + ")", id: b.nextID()},
		k: s[0], in: l.In, outF: l.Out, xShape: s.Clone(), relu: relu}
	op.needDX = b.NeedsGrad(x)
	op.needDW = l.Weight.Trainable()
	inputs := []*G.Node{x, b.Param(l.Weight)}
	if l.Bias != nil {
		if bs := l.Bias.Shape(); len(bs) != 1 || bs[0] != l.Out {
			return b.Fail(fmt.Errorf("%s: bias shape %v, want [%d]", l.Name, bs, l.Out))
		}
		op.hasBias = true
		op.needDB = l.Bias.Trainable()
		inputs = append(inputs, b.Param(l.Bias))
	}
	return b.apply(op, inputs...)
}

// linearOp: y = act(x W^T + b). Inputs x, W, then b if hasBias.
type linearOp struct {
	opBase
	k, in, outF int
	xShape      tensor.Shape
	hasBias     bool
	relu        bool

	needDX, needDW, needDB bool
}

func (op *linearOp) Arity() int {
	if op.hasBias {
		return 3
	}
	return 2
}

func (op *linearOp) Type() hm.Type {
	if op.hasBias {
		return fnType(2, len(op.xShape), 2, 1)
	}
	return fnType(2, len(op.xShape), 2)
}

func (op *linearOp) outShape() tensor.Shape { return tensor.Shape{op.k, op.outF} }

func (op *linearOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.outShape(), nil }

func (op *linearOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op *linearOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%s: %d inputs, want %d", op.name, len(in), op.Arity())
	}
	if !shapeOf(in[0]).Eq(op.xShape) {
		return nil, fmt.Errorf("%s: input shape %v, graph built for %v", op.name, shapeOf(in[0]), op.xShape)
	}
	var x, w []float32
	err := unpack(op.name, in, &x, &w)
	if err != nil {
		return nil, err
	}
	if len(w) != op.outF*op.in {
		return nil, fmt.Errorf("%s: weight has %d values, want %d", op.name, len(w), op.outF*op.in)
	}
	var bias []float32
	if op.hasBias {
		if bias, err = f32(in[2]); err != nil {
			return nil, err
		}
		if len(bias) != op.outF {
			return nil, fmt.Errorf("%s: bias has %d values, want %d", op.name, len(bias), op.outF)
		}
	}
	out := op.out(prealloc, op.outShape())
	y := out.Data().([]float32)
	if op.k > 0 && op.outF > 0 {
		kernels.Sgemm(false, true, op.k, op.outF, op.in, 1, x, op.in, w, op.in, 0, y, op.outF)
	}
	if bias != nil || op.relu {
		for r := 0; r < op.k; r++ {
			row := y[r*op.outF : (r+1)*op.outF]
			if bias != nil {
				for j, v := range bias {
					row[j] += v
				}
			}
			if op.relu {
				for j, v := range row {
					if !(v > 0) && v == v { // keep NaN visible
						row[j] = 0
					}
				}
			}
		}
	}
	return out, nil
}

func (op *linearOp) DiffWRT(int) []bool {
	d := []bool{op.needDX, op.needDW}
	if op.hasBias {
		d = append(d, op.needDB)
	}
	return d
}

func (op *linearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	ret := make(G.Nodes, len(inputs))
	if !op.needDX && !op.needDW && !(op.hasBias && op.needDB) {
		return ret, nil
	}
	g := grad
	var err error
	if op.relu {
		if g, err = G.ApplyOp(&linearMaskOp{opBase: opBase{name: op.name + ".dmask", id: op.id}, sig: newSig(op.outShape(), 2, 2), fwd: op}, output, grad); err != nil {
			return nil, err
		}
	}
	if op.needDX {
		if ret[0], err = G.ApplyOp(&linearBwdDataOp{opBase: opBase{name: op.name + ".dx", id: op.id}, sig: newSig(op.xShape, 2, 2), fwd: op}, g, inputs[1]); err != nil {
			return nil, err
		}
	}
	if op.needDW {
		if ret[1], err = G.ApplyOp(&linearBwdWeightOp{opBase: opBase{name: op.name + ".dw", id: op.id}, sig: newSig(tensor.Shape{op.outF, op.in}, len(op.xShape), 2), fwd: op}, inputs[0], g); err != nil {
			return nil, err
		}
	}
	if op.hasBias && op.needDB {
		if ret[2], err = G.ApplyOp(&linearBwdBiasOp{opBase: opBase{name: op.name + ".db", id: op.id}, sig: newSig(tensor.Shape{op.outF}, 2), fwd: op}, g); err != nil {
			return nil, err
		}
	}
	return ret, nil
}

// linearMaskOp: dy * (y > 0), the gradient through the fused ReLU.
type linearMaskOp struct {
	opBase
	sig
	fwd *linearOp
}

func (op *linearMaskOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *linearMaskOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var y, dy []float32
	err := unpack(op.name, in, &y, &dy)
	if err != nil {
		return nil, err
	}
	n := op.fwd.k * op.fwd.outF
	if len(y) != n || len(dy) != n {
		return nil, fmt.Errorf("%s: %d outputs and %d gradients, want %d", op.name, len(y), len(dy), n)
	}
	out := op.out(prealloc, op.fwd.outShape())
	g := out.Data().([]float32)
	for i, d := range dy {
		if y[i] > 0 {
			g[i] = d
		} else {
			g[i] = 0
		}
	}
	return out, nil
}

// linearBwdDataOp: dx = g W, written in x's shape.
type linearBwdDataOp struct {
	opBase
	sig
	fwd *linearOp
}

func (op *linearBwdDataOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *linearBwdDataOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var g, w []float32
	err := unpack(op.name, in, &g, &w)
	if err != nil {
		return nil, err
	}
	f := op.fwd
	if len(g) != f.k*f.outF || len(w) != f.outF*f.in {
		return nil, fmt.Errorf("%s: gradient %d and weight %d values, want %d and %d", op.name, len(g), len(w), f.k*f.outF, f.outF*f.in)
	}
	out := op.out(prealloc, f.xShape)
	dx := out.Data().([]float32)
	if f.outF == 0 {
		clear(dx)
	} else if f.k > 0 {
		kernels.Sgemm(false, false, f.k, f.in, f.outF, 1, g, f.outF, w, f.in, 0, dx, f.in)
	}
	return out, nil
}

// linearBwdWeightOp: dW = g^T x.
type linearBwdWeightOp struct {
	opBase
	sig
	fwd *linearOp
}

func (op *linearBwdWeightOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *linearBwdWeightOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var x, g []float32
	err := unpack(op.name, in, &x, &g)
	if err != nil {
		return nil, err
	}
	f := op.fwd
	if len(g) != f.k*f.outF || len(x) != f.k*f.in {
		return nil, fmt.Errorf("%s: gradient %d and input %d values, want %d and %d", op.name, len(g), len(x), f.k*f.outF, f.k*f.in)
	}
	out := op.out(prealloc, tensor.Shape{f.outF, f.in})
	dw := out.Data().([]float32)
	if f.k == 0 {
		clear(dw)
	} else if f.outF > 0 {
		kernels.Sgemm(true, false, f.outF, f.in, f.k, 1, g, f.outF, x, f.in, 0, dw, f.in)
	}
	return out, nil
}

// linearBwdBiasOp: db = column sums of g (accumulated in float64).
type linearBwdBiasOp struct {
	opBase
	sig
	fwd *linearOp
	acc []float64
}

func (op *linearBwdBiasOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *linearBwdBiasOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var g []float32
	err := unpack(op.name, in, &g)
	if err != nil {
		return nil, err
	}
	f := op.fwd
	if len(g) != f.k*f.outF {
		return nil, fmt.Errorf("%s: gradient has %d values, want %d", op.name, len(g), f.k*f.outF)
	}
	if len(op.acc) != f.outF {
		op.acc = make([]float64, f.outF)
	}
	clear(op.acc)
	for r := 0; r < f.k; r++ {
		for j, v := range g[r*f.outF : (r+1)*f.outF] {
			op.acc[j] += float64(v)
		}
	}
	out := op.out(prealloc, tensor.Shape{f.outF})
	db := out.Data().([]float32)
	for j, v := range op.acc {
		db[j] = float32(v)
	}
	return out, nil
}
