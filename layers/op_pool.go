package layers

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/kernels"
)

type maxPoolOp struct {
	opBase
	p      kernels.PoolParams
	needDX bool
}

func (op *maxPoolOp) Arity() int    { return 1 }
func (op *maxPoolOp) Type() hm.Type { return fnType(4, 4) }
func (op *maxPoolOp) outShape() tensor.Shape {
	oh, ow := op.p.OutHW()
	return tensor.Shape{op.p.N, op.p.C, oh, ow}
}
func (op *maxPoolOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.outShape(), nil }
func (op *maxPoolOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *maxPoolOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var x []float32
	err := unpack(op.name, in, &x)
	if err != nil {
		return nil, err
	}
	out := op.out(prealloc, op.outShape())
	kernels.MaxPoolForward(op.p, x, out.Data().([]float32))
	return out, nil
}
func (op *maxPoolOp) DiffWRT(int) []bool { return []bool{op.needDX} }
func (op *maxPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !op.needDX {
		return G.Nodes{nil}, nil
	}
	dx, err := G.ApplyOp(&maxPoolBwdOp{opBase: opBase{name: "maxpool.dx", id: op.id}, sig: newSig(tensor.Shape{op.p.N, op.p.C, op.p.H, op.p.W}, 4, 4, 4), fwd: op}, inputs[0], output, grad)
	return G.Nodes{dx}, err
}

type maxPoolBwdOp struct {
	opBase
	sig
	fwd *maxPoolOp
}

func (op *maxPoolBwdOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *maxPoolBwdOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var x, y, dy []float32
	err := unpack(op.name, in, &x, &y, &dy)
	if err != nil {
		return nil, err
	}
	s, _ := op.InferShape()
	out := op.out(prealloc, s)
	kernels.MaxPoolBackward(op.fwd.p, x, y, dy, out.Data().([]float32))
	return out, nil
}

type upsampleOp struct {
	opBase
	sig
	n, c, h, w, oh, ow int
	needDX             bool
}

func (op *upsampleOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *upsampleOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var x []float32
	err := unpack(op.name, in, &x)
	if err != nil {
		return nil, err
	}
	s, _ := op.InferShape()
	out := op.out(prealloc, s)
	kernels.UpsampleNearestForward(op.n*op.c, op.h, op.w, op.oh, op.ow, x, out.Data().([]float32))
	return out, nil
}
func (op *upsampleOp) DiffWRT(int) []bool { return []bool{op.needDX} }
func (op *upsampleOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !op.needDX {
		return G.Nodes{nil}, nil
	}
	dx, err := G.ApplyOp(&upsampleBwdOp{opBase: opBase{name: "upsample.dx", id: op.id}, sig: newSig(tensor.Shape{op.n, op.c, op.h, op.w}, 4), fwd: op}, grad)
	return G.Nodes{dx}, err
}

type upsampleBwdOp struct {
	opBase
	sig
	fwd *upsampleOp
}

func (op *upsampleBwdOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *upsampleBwdOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var dy []float32
	err := unpack(op.name, in, &dy)
	if err != nil {
		return nil, err
	}
	f := op.fwd
	s, _ := op.InferShape()
	out := op.out(prealloc, s)
	kernels.UpsampleNearestBackward(f.n*f.c, f.h, f.w, f.oh, f.ow, dy, out.Data().([]float32))
	return out, nil
}
