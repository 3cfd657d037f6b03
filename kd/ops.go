package kd

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/layers"
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

// opBase is layers.OpBase (name, unique hash, shared Op methods, output
// reuse) under the names this package's ops use.
type opBase struct{ layers.OpBase }

func newOpBase(name string) opBase { return opBase{layers.NewOpBase("kd." + name)} }

func (o *opBase) out(prealloc G.Value, shape tensor.Shape) *tensor.Dense {
	return o.Out(prealloc, shape)
}

func f32(v G.Value) ([]float32, error) { return layers.F32(v) }

func scalarOf(v G.Value) (float32, error) { return layers.ScalarOf(v) }

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

// DropArenaViews implements layers.ArenaViewer: the gradient buffer may be
// the op's arena slot.
func (op *levelOp) DropArenaViews() {
	if op.Slot() != nil {
		op.grad = nil
	}
}

// ArenaFloats: in a planned program the gradient buffer is the op's arena
// slot (the gradient op reads this op's output, so the slot outlives it).
func (op *levelOp) ArenaFloats() int {
	if !op.needGrad {
		return 1
	}
	return op.shape[0] * op.shape[1] * op.shape[2] * op.shape[3]
}

func (op *levelOp) Do(in ...G.Value) (G.Value, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("%s: %d inputs, want 1", op.Name(), len(in))
	}
	x, err := f32(in[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Name(), err)
	}
	if s, ok := shape4(in[0].Shape()); !ok || s != op.shape {
		return nil, fmt.Errorf("%s: student shape %v, graph built for %v", op.Name(), in[0].Shape(), op.shape)
	}
	t, err := op.teacher.level(op.Name(), op.level, op.shape)
	if err != nil {
		return nil, err
	}
	var g []float32
	if op.needGrad {
		if slot := op.Slot(); len(slot) >= len(x) {
			op.grad = slot[:len(x)] // planned: lives as long as the output
		} else if len(op.grad) != len(x) || op.Slot() != nil {
			op.grad = make([]float32, len(x))
		}
		g = op.grad
	}
	v, err := op.loss.Loss(x, t, op.shape, g)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Name(), err)
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
	d, err := G.ApplyOp(&levelGradOp{opBase: newOpBase(op.Name() + ".dx"), fwd: op}, output, grad)
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
		return nil, fmt.Errorf("%s: %d inputs, want 2", op.Name(), len(in))
	}
	g, err := scalarOf(in[1])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Name(), err)
	}
	s := op.fwd.shape
	out := op.out(prealloc, tensor.Shape{s[0], s[1], s[2], s[3]})
	dx := out.Data().([]float32)
	src := op.fwd.grad
	if len(src) != len(dx) {
		return nil, fmt.Errorf("%s: the forward pass did not run", op.Name())
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
		return nil, fmt.Errorf("%s: %d inputs, want 1", op.Name(), len(in))
	}
	x, err := f32(in[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Name(), err)
	}
	if s, ok := shape4(in[0].Shape()); !ok || s != op.shape {
		return nil, fmt.Errorf("%s: input shape %v, graph built for %v", op.Name(), in[0].Shape(), op.shape)
	}
	if op.src == nil || *op.src == nil {
		return nil, fmt.Errorf("%s: no mask source", op.Name())
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
	d, err := G.ApplyOp(&maskGradOp{opBase: newOpBase(op.Name() + ".dx"), fwd: op}, grad)
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
		return nil, fmt.Errorf("%s: %d inputs, want 1", op.Name(), len(in))
	}
	dy, err := f32(in[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Name(), err)
	}
	f := op.fwd
	n, c, hw := f.shape[0], f.shape[1], f.shape[2]*f.shape[3]
	if len(dy) != n*c*hw || len(f.mask) != n*hw {
		return nil, fmt.Errorf("%s: gradient has %d values for shape %v (or the forward did not run)", op.Name(), len(dy), f.shape)
	}
	out := op.out(prealloc, f.tshape())
	applyMask(out.Data().([]float32), dy, f.mask, n, c, hw)
	return out, nil
}
