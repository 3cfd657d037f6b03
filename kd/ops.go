package kd

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Gorgonia side of the distillation losses.
//
// A level's loss is one custom op whose only graph input is the student's
// (possibly adapted) feature map. The teacher's map is host data read from
// a *Teacher the op points to, filled by the caller before every run: it
// is not a graph node, gets no gradient and takes no graph memory. The
// forward pass computes the loss in float64 and, when the student needs a
// gradient, dLoss/dstudent into a buffer the op owns; the backward op
// multiplies that buffer by the incoming scalar gradient. The backward op
// takes the forward's output as an input, so the tape always runs it
// after the forward of the same run.

var opSeq atomic.Int64

// opBase: a printable name and a unique id in the hash so that Gorgonia
// never merges two op instances (copied from package layers).
type opBase struct {
	name  string
	id    int64
	cache *tensor.Dense
}

func newOpBase(name string) opBase { return opBase{name: name, id: opSeq.Add(1)} }

func (o *opBase) ReturnsPtr() bool      { return false }
func (o *opBase) CallsExtern() bool     { return false }
func (o *opBase) OverwritesInput() int  { return -1 }
func (o *opBase) String() string        { return o.name }
func (o *opBase) WriteHash(h hash.Hash) { fmt.Fprintf(h, "skd.kd.%s#%d", o.name, o.id) }
func (o *opBase) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

// out returns prealloc when it is a float32 tensor of the wanted shape,
// else the op's own cached tensor (see layers.opBase.out for why reusing
// them is safe).
func (o *opBase) out(prealloc G.Value, shape tensor.Shape) *tensor.Dense {
	if d, ok := prealloc.(*tensor.Dense); ok && fits(d, shape) {
		return d
	}
	if o.cache != nil && fits(o.cache, shape) {
		return o.cache
	}
	o.cache = tensor.New(tensor.WithShape(shape.Clone()...), tensor.Of(tensor.Float32))
	return o.cache
}

func fits(d *tensor.Dense, shape tensor.Shape) bool {
	if d.Dtype() != tensor.Float32 || !d.Shape().Eq(shape) || !d.IsNativelyAccessible() || d.IsView() {
		return false
	}
	_, ok := d.Data().([]float32)
	return ok
}

func f32(v G.Value) ([]float32, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("expected *tensor.Dense, got %T", v)
	}
	data, ok := d.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("expected float32 data, got %v", d.Dtype())
	}
	return data, nil
}

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

func shape4(s tensor.Shape) ([4]int, bool) {
	if len(s) != 4 {
		return [4]int{}, false
	}
	return [4]int{s[0], s[1], s[2], s[3]}, true
}

// Teacher holds the teacher's feature maps of the current batch as host
// data: Levels[i] is level i's NCHW map, Shapes[i] its shape. Level
// indices are those of the student's list given to Build. Refill it before
// every run; it must not change between a run's forward and backward.
type Teacher struct {
	Levels [][]float32
	Shapes [][4]int
}

// level returns level i's data after checking it against the student's
// shape.
func (t *Teacher) level(name string, i int, want [4]int) ([]float32, error) {
	if t == nil {
		return nil, fmt.Errorf("%s: no teacher data", name)
	}
	if i >= len(t.Levels) || i >= len(t.Shapes) {
		return nil, fmt.Errorf("%s: teacher has %d levels (%d shapes), level %d is missing", name, len(t.Levels), len(t.Shapes), i)
	}
	s := t.Shapes[i]
	if s != want {
		switch {
		case s[0] != want[0]:
			return nil, fmt.Errorf("%s: teacher batch %d, student batch %d (teacher %v, student %v)", name, s[0], want[0], s, want)
		case s[1] != want[1]:
			return nil, fmt.Errorf("%s: teacher has %d channels, student %d (teacher %v, student %v): enable the adapter", name, s[1], want[1], s, want)
		default:
			return nil, fmt.Errorf("%s: teacher map %dx%d, student map %dx%d (teacher %v, student %v): spatial sizes must match", name, s[2], s[3], want[2], want[3], s, want)
		}
	}
	d := t.Levels[i]
	if len(d) != s[0]*s[1]*s[2]*s[3] {
		return nil, fmt.Errorf("%s: teacher level %d has %d values, its shape %v needs %d", name, i, len(d), s, s[0]*s[1]*s[2]*s[3])
	}
	return d, nil
}

// levelOp is the scalar loss of one level.
type levelOp struct {
	opBase
	loss     LevelLoss
	teacher  *Teacher
	level    int
	shape    [4]int
	needGrad bool
	grad     []float32 // dLoss/dstudent of the last forward
	val      *G.F32
	last     float64
}

// newLevelOp returns a level's loss op on a student node of shape s.
func newLevelOp(name string, loss LevelLoss, teacher *Teacher, level int, s [4]int, needGrad bool) *levelOp {
	return &levelOp{opBase: newOpBase(name), loss: loss, teacher: teacher, level: level, shape: s, needGrad: needGrad}
}

func (op *levelOp) Arity() int { return 1 }
func (op *levelOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 4, Of: a}, a)
}
func (op *levelOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (op *levelOp) DiffWRT(int) []bool                             { return []bool{op.needGrad} }

func (op *levelOp) Do(in ...G.Value) (G.Value, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("%s: %d inputs, want 1", op.name, len(in))
	}
	x, err := f32(in[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	if s, ok := shape4(in[0].Shape()); !ok || s != op.shape {
		return nil, fmt.Errorf("%s: student shape %v, graph built for %v", op.name, in[0].Shape(), op.shape)
	}
	t, err := op.teacher.level(op.name, op.level, op.shape)
	if err != nil {
		return nil, err
	}
	var g []float32
	if op.needGrad {
		if len(op.grad) != len(x) {
			op.grad = make([]float32, len(x))
		}
		g = op.grad
	}
	v, err := op.loss.Loss(x, t, op.shape, g)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	op.last = v
	if op.val == nil {
		op.val = G.NewF32(0)
	}
	*op.val = G.F32(float32(v))
	return op.val, nil
}

func (op *levelOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !op.needGrad {
		return make(G.Nodes, 1), nil
	}
	d, err := G.ApplyOp(&levelGradOp{opBase: newOpBase(op.name + ".dx"), fwd: op}, output, grad)
	return G.Nodes{d}, err
}

// levelGradOp: (loss, g) -> g * dLoss/dstudent.
type levelGradOp struct {
	opBase
	fwd *levelOp
}

func (op *levelGradOp) Arity() int { return 2 }
func (op *levelGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, G.TensorType{Dims: 4, Of: a})
}
func (op *levelGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	s := op.fwd.shape
	return tensor.Shape{s[0], s[1], s[2], s[3]}, nil
}
func (op *levelGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *levelGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("%s: %d inputs, want 2", op.name, len(in))
	}
	g, err := scalarOf(in[1])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	s := op.fwd.shape
	out := op.out(prealloc, tensor.Shape{s[0], s[1], s[2], s[3]})
	dx := out.Data().([]float32)
	src := op.fwd.grad
	if len(src) != len(dx) {
		return nil, fmt.Errorf("%s: the forward pass did not run", op.name)
	}
	for i, v := range src {
		dx[i] = v * g
	}
	return out, nil
}

// MaskSource draws the uniform numbers of MGD's random mask (a
// *math/rand.Rand fits).
type MaskSource interface{ Float64() float64 }

// maskOp: y = x * mask with a fresh spatial mask [N, 1, H, W] every run
// (mmrazor MGD: mask = 0 where u > 1 - ratio, u ~ U[0, 1), drawn in
// n, h, w order).
type maskOp struct {
	opBase
	shape    [4]int
	ratio    float64
	src      *MaskSource
	mask     []float32 // N*H*W, the last forward's mask
	needGrad bool
}

func (op *maskOp) Arity() int { return 1 }
func (op *maskOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 4, Of: a}, G.TensorType{Dims: 4, Of: a})
}
func (op *maskOp) tshape() tensor.Shape {
	return tensor.Shape{op.shape[0], op.shape[1], op.shape[2], op.shape[3]}
}
func (op *maskOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.tshape(), nil }
func (op *maskOp) DiffWRT(int) []bool                             { return []bool{op.needGrad} }
func (op *maskOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *maskOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("%s: %d inputs, want 1", op.name, len(in))
	}
	x, err := f32(in[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	if s, ok := shape4(in[0].Shape()); !ok || s != op.shape {
		return nil, fmt.Errorf("%s: input shape %v, graph built for %v", op.name, in[0].Shape(), op.shape)
	}
	if op.src == nil || *op.src == nil {
		return nil, fmt.Errorf("%s: no mask source", op.name)
	}
	n, c, hw := op.shape[0], op.shape[1], op.shape[2]*op.shape[3]
	if len(op.mask) != n*hw {
		op.mask = make([]float32, n*hw)
	}
	src := *op.src
	for i := range op.mask {
		if src.Float64() > 1-op.ratio {
			op.mask[i] = 0
		} else {
			op.mask[i] = 1
		}
	}
	out := op.out(prealloc, op.tshape())
	applyMask(out.Data().([]float32), x, op.mask, n, c, hw)
	return out, nil
}

func applyMask(dst, src, mask []float32, n, c, hw int) {
	for i := 0; i < n; i++ {
		m := mask[i*hw : (i+1)*hw]
		for ch := 0; ch < c; ch++ {
			off := (i*c + ch) * hw
			d, s := dst[off:off+hw], src[off:off+hw]
			for j, mv := range m {
				d[j] = s[j] * mv
			}
		}
	}
}

func (op *maskOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !op.needGrad {
		return make(G.Nodes, 1), nil
	}
	d, err := G.ApplyOp(&maskGradOp{opBase: newOpBase(op.name + ".dx"), fwd: op}, grad)
	return G.Nodes{d}, err
}

// maskGradOp: dy -> dy * mask (the mask of the same run: dy depends on
// the forward's output, so the forward has run).
type maskGradOp struct {
	opBase
	fwd *maskOp
}

func (op *maskGradOp) Arity() int { return 1 }
func (op *maskGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 4, Of: a}, G.TensorType{Dims: 4, Of: a})
}
func (op *maskGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.fwd.tshape(), nil }
func (op *maskGradOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *maskGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("%s: %d inputs, want 1", op.name, len(in))
	}
	dy, err := f32(in[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	f := op.fwd
	n, c, hw := f.shape[0], f.shape[1], f.shape[2]*f.shape[3]
	if len(dy) != n*c*hw || len(f.mask) != n*hw {
		return nil, fmt.Errorf("%s: gradient has %d values for shape %v (or the forward did not run)", op.name, len(dy), f.shape)
	}
	out := op.out(prealloc, f.tshape())
	applyMask(out.Data().([]float32), dy, f.mask, n, c, hw)
	return out, nil
}
