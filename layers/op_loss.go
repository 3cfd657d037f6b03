package layers

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Detection losses as scalar-valued custom ops.
//
// The per-iteration data of a loss (which anchors or RoIs were sampled,
// their targets, the normaliser) is not a graph value: it lives in a
// host-side targets struct that the op holds a pointer to and reads when
// it runs. The caller refills the struct every iteration, either before
// Machine.Run (RPN targets) or from an op that runs earlier in the same
// run (RoI sampling: the loss's inputs depend on that op's output, so the
// tape orders it first). The struct must not change between the forward
// and the backward pass of one run.
//
// Conventions shared by every loss:
//   - Inputs that are listed together (SigmoidBCE, BoxRegression) form one
//     flat index space: input 0's elements in row-major order, then input
//     1's, and so on. Indices into the targets refer to that space.
//   - Norm <= 0 (or NaN) is treated as 1, so an iteration without samples
//     never divides by zero.
//   - Empty target lists give a loss of 0 and zero gradients.
//   - The value is accumulated in float64 and kept by the op: read it after
//     a run with the targets' Last method or LossValue (the float32 value
//     in Gorgonia's register may already be overwritten).
//   - Gradients are built only for inputs that need one.
//   - Bad targets (index out of range, mismatched lengths) make the run
//     fail with an error naming the loss; nothing panics.

// BCETargets are the samples of a SigmoidBCE loss.
type BCETargets struct {
	// Index is the flat index (over the concatenated logits) of each
	// sampled logit; an index may repeat (its gradient accumulates).
	Index []int32
	// Target is each sample's label in [0, 1] (soft labels are allowed).
	Target []float32
	// Norm divides the sum (torchvision's RPN: the number of samples).
	Norm float32

	last float64
}

// Last returns the loss value of the last run that used these targets.
func (t *BCETargets) Last() float64 { return t.last }

// CETargets are the labels of a SoftmaxCE loss.
type CETargets struct {
	// Label holds one class index per logits row; a negative label marks
	// an ignored (padding) row that adds nothing to the loss or gradient.
	Label []int32
	// Norm divides the sum (torchvision's RoI head: the number of sampled
	// RoIs, i.e. F.cross_entropy's mean).
	Norm float32

	last float64
}

// Last returns the loss value of the last run that used these targets.
func (t *CETargets) Last() float64 { return t.last }

// BoxTargets are the samples of a BoxRegression loss.
type BoxTargets struct {
	// Base is the flat index (over the concatenated predictions) of
	// coordinate 0 of each sample; coordinate c sits at Base + c*stride.
	Base []int32
	// Stride gives each sample's distance between its coordinates. When
	// it is empty every sample uses CommonStride: 1 for RoI deltas
	// [K, 4*C], H*W for RPN deltas [N, A*4, H, W] of one level (samples of
	// several levels need Stride).
	Stride       []int32
	CommonStride int32
	// Target is each sample's regression target (encoded deltas).
	Target [][4]float32
	// Norm divides the sum (torchvision: the number of sampled anchors or
	// RoIs).
	Norm float32

	last float64
}

// Last returns the loss value of the last run that used these targets.
func (t *BoxTargets) Last() float64 { return t.last }

// LossValue returns the float64 value of the last run of a node built by
// SigmoidBCE, SoftmaxCE, BoxRegression, AddScalars, WeightedSum or Dot.
func LossValue(n *G.Node) (float64, bool) {
	if n == nil {
		return 0, false
	}
	if lv, ok := n.Op().(lastValuer); ok {
		return lv.lastValue(), true
	}
	if d, ok := n.Op().(*dotOp); ok {
		return d.last, true
	}
	return 0, false
}

type lastValuer interface{ lastValue() float64 }

// normOf applies the Norm guard.
func normOf(n float32) float64 {
	if !(n > 0) {
		return 1
	}
	return float64(n)
}

// scalarType is a -> a -> ... (n inputs) -> a for scalar ops.
func scalarFnType(n int) hm.Type {
	a := hm.TypeVariable('a')
	ts := make([]hm.Type, n+1)
	for i := range ts {
		ts[i] = a
	}
	return hm.NewFnType(ts...)
}

// reduceType is Tensor(d0) -> Tensor(d1) -> ... -> a (a scalar).
func reduceType(shapes []tensor.Shape) hm.Type {
	a := hm.TypeVariable('a')
	ts := make([]hm.Type, 0, len(shapes)+1)
	for _, s := range shapes {
		ts = append(ts, G.TensorType{Dims: len(s), Of: a})
	}
	return hm.NewFnType(append(ts, a)...)
}

// gradType is Tensor(d) -> a -> Tensor(d): (input, scalar grad) -> dinput.
func gradType(dims int) hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: dims, Of: a}, a, G.TensorType{Dims: dims, Of: a})
}

// flatSpace maps a flat index over several inputs to (input, offset).
type flatSpace struct {
	shapes []tensor.Shape
	offs   []int // offs[i]: first flat index of input i; offs[len] = total
}

func newFlatSpace(xs []*G.Node) flatSpace {
	fs := flatSpace{offs: make([]int, len(xs)+1)}
	for i, x := range xs {
		fs.shapes = append(fs.shapes, x.Shape().Clone())
		fs.offs[i+1] = fs.offs[i] + x.Shape().TotalSize()
	}
	return fs
}

func (fs *flatSpace) total() int { return fs.offs[len(fs.offs)-1] }

// locate returns the input holding flat index g and the index inside it.
func (fs *flatSpace) locate(g int) (int, int) {
	for i := 0; i+1 < len(fs.offs); i++ {
		if g < fs.offs[i+1] {
			return i, g - fs.offs[i]
		}
	}
	return -1, -1
}

// readInputs reads the float32 data of every input into bufs and checks
// their sizes against the graph's shapes.
func (fs *flatSpace) readInputs(name string, bufs [][]float32, in []G.Value) error {
	if len(in) != len(fs.shapes) {
		return fmt.Errorf("%s: %d inputs, want %d", name, len(in), len(fs.shapes))
	}
	for i, v := range in {
		d, err := f32(v)
		if err != nil {
			return fmt.Errorf("%s: input %d: %w", name, i, err)
		}
		if len(d) != fs.shapes[i].TotalSize() {
			return fmt.Errorf("%s: input %d has %d values, graph built for %v", name, i, len(d), fs.shapes[i])
		}
		bufs[i] = d
	}
	return nil
}

// lossBase is what the scalar loss ops share: their output value (one
// *G.F32 reused every run, so a steady-state run allocates nothing) and
// their last value in float64.
type lossBase struct {
	opBase
	val  *G.F32
	last float64
}

func (o *lossBase) lastValue() float64 { return o.last }

func (o *lossBase) result(s float64) G.Value {
	o.last = s
	if o.val == nil {
		o.val = G.NewF32(0)
	}
	*o.val = G.F32(float32(s))
	return o.val
}

func (o *lossBase) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

// ---------------------------------------------------------------------
// SigmoidBCE

// SigmoidBCE returns the scalar
//
//	sum_i BCEWithLogits(logit[Index[i]], Target[i]) / Norm
//
// over the flat concatenation of logits, with torch's numerically stable
// form max(x, 0) - x*t + log(1 + exp(-|x|)) (torchvision's RPN objectness
// loss: Norm is the number of sampled anchors).
func (b *Builder) SigmoidBCE(t *BCETargets, logits ...*G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	if t == nil || len(logits) == 0 {
		return b.Fail(fmt.Errorf("sigmoid_bce: need targets and at least one logits node"))
	}
	for i, x := range logits {
		if x == nil {
			return b.Fail(fmt.Errorf("sigmoid_bce: logits %d is missing", i))
		}
	}
	op := newFlatLoss(b, "sigmoid_bce", &bceTerms{t: t}, logits)
	op.impl.(*bceTerms).fs = &op.fs
	return b.apply(op, logits...)
}

// bceTerms are SigmoidBCE's terms: one per sampled logit.
type bceTerms struct {
	t  *BCETargets
	fs *flatSpace
}

func (op *bceTerms) targetNorm() float32 { return op.t.Norm }
func (op *bceTerms) setLast(v float64)   { op.t.last = v }
func (op *bceTerms) checkTargets() error {
	t := op.t
	if len(t.Index) != len(t.Target) {
		return fmt.Errorf("sigmoid_bce: %d indices but %d targets", len(t.Index), len(t.Target))
	}
	n := op.fs.total()
	for i, g := range t.Index {
		if g < 0 || int(g) >= n {
			return fmt.Errorf("sigmoid_bce: sample %d has index %d, logits hold %d values", i, g, n)
		}
	}
	return nil
}

func (op *bceTerms) terms(lo, hi int, x func(int) float64, emit func(int, float64, float64)) {
	for i, gi := range op.t.Index {
		if g := int(gi); g >= lo && g < hi {
			l, d := bceTerm(x(g), float64(op.t.Target[i]))
			emit(g, l, d)
		}
	}
}

// bceTerm returns BCEWithLogits(x, t) and its derivative sigmoid(x) - t.
func bceTerm(x, t float64) (float64, float64) {
	l := math.Max(x, 0) - x*t + math.Log1p(math.Exp(-math.Abs(x)))
	var s float64
	if x >= 0 {
		s = 1 / (1 + math.Exp(-x))
	} else {
		e := math.Exp(x)
		s = e / (1 + e)
	}
	return l, s - t
}

// ---------------------------------------------------------------------
// SoftmaxCE

// SoftmaxCE returns the scalar sum over rows k with Label[k] >= 0 of
// -log softmax(logits[k])[Label[k]], divided by Norm (torchvision's RoI
// classification loss, F.cross_entropy's mean when Norm is the number of
// labelled rows). logits is [K, C]; Label must hold K entries.
func (b *Builder) SoftmaxCE(t *CETargets, logits *G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	if t == nil || logits == nil {
		return b.Fail(fmt.Errorf("softmax_ce: missing targets or logits"))
	}
	s := logits.Shape()
	if len(s) != 2 || s[1] < 1 {
		return b.Fail(fmt.Errorf("softmax_ce: logits shape %v, want [K, C] with C >= 1", s))
	}
	op := &ceOp{lossBase: lossBase{opBase: opBase{name: "softmax_ce", id: b.nextID()}}, t: t, k: s[0], c: s[1], need: b.NeedsGrad(logits)}
	return b.apply(op, logits)
}

type ceOp struct {
	lossBase
	t    *CETargets
	k, c int
	need bool
}

func (op *ceOp) Arity() int         { return 1 }
func (op *ceOp) Type() hm.Type      { return reduceType([]tensor.Shape{{op.k, op.c}}) }
func (op *ceOp) DiffWRT(int) []bool { return []bool{op.need} }

func (op *ceOp) read(v G.Value) ([]float32, error) {
	x, err := f32(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	if len(x) != op.k*op.c {
		return nil, fmt.Errorf("%s: logits have %d values, graph built for [%d %d]", op.name, len(x), op.k, op.c)
	}
	if len(op.t.Label) != op.k {
		return nil, fmt.Errorf("%s: %d labels for %d logits rows", op.name, len(op.t.Label), op.k)
	}
	for i, l := range op.t.Label {
		if int(l) >= op.c {
			return nil, fmt.Errorf("%s: row %d has label %d, logits have %d classes", op.name, i, l, op.c)
		}
	}
	return x, nil
}

// rowLSE returns max and log(sum(exp(row - max))) of a row.
func rowLSE(row []float32) (float64, float64) {
	m := math.Inf(-1)
	for _, v := range row {
		if float64(v) > m {
			m = float64(v)
		}
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - m)
	}
	return m, math.Log(s)
}

func (op *ceOp) Do(in ...G.Value) (G.Value, error) {
	x, err := op.read(in[0])
	if err != nil {
		return nil, err
	}
	var s float64
	for r, l := range op.t.Label {
		if l < 0 {
			continue
		}
		row := x[r*op.c : (r+1)*op.c]
		m, lse := rowLSE(row)
		s += m + lse - float64(row[l])
	}
	s /= normOf(op.t.Norm)
	op.t.last = s
	return op.result(s), nil
}

func (op *ceOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !op.need {
		return make(G.Nodes, 1), nil
	}
	d, err := G.ApplyOp(&ceGradOp{opBase: opBase{name: op.name + ".dx", id: op.id}, fwd: op}, inputs[0], grad)
	return G.Nodes{d}, err
}

// ceGradOp: (softmax(x) - onehot(label)) * g / Norm on labelled rows.
type ceGradOp struct {
	opBase
	fwd *ceOp
}

func (op *ceGradOp) Arity() int    { return 2 }
func (op *ceGradOp) Type() hm.Type { return gradType(2) }
func (op *ceGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.fwd.k, op.fwd.c}, nil
}
func (op *ceGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *ceGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	f := op.fwd
	x, err := f.read(in[0])
	if err != nil {
		return nil, err
	}
	g, err := scalarOf(in[1])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	out := op.out(prealloc, tensor.Shape{f.k, f.c})
	dx := out.Data().([]float32)
	scale := float64(g) / normOf(f.t.Norm)
	for r, l := range f.t.Label {
		drow := dx[r*f.c : (r+1)*f.c]
		if l < 0 {
			clear(drow)
			continue
		}
		row := x[r*f.c : (r+1)*f.c]
		m, lse := rowLSE(row)
		for c, v := range row {
			p := math.Exp(float64(v) - m - lse)
			if c == int(l) {
				p--
			}
			drow[c] = float32(p * scale)
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------
// BoxRegression

// BoxRegression returns the scalar
//
//	sum_i sum_{c<4} smooth_l1(pred[Base[i] + c*stride_i] - Target[i][c], beta) / Norm
//
// over the flat concatenation of preds, where smooth_l1(d, beta) is
// 0.5 d^2 / beta for |d| < beta and |d| - 0.5 beta otherwise, and |d| when
// beta == 0 (torchvision: beta = 1/9; detectron2: L1). beta must be >= 0.
func (b *Builder) BoxRegression(t *BoxTargets, beta float64, preds ...*G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	if t == nil || len(preds) == 0 {
		return b.Fail(fmt.Errorf("box_regression: need targets and at least one prediction node"))
	}
	if !(beta >= 0) || math.IsInf(beta, 1) {
		return b.Fail(fmt.Errorf("box_regression: beta %v, want a finite value >= 0", beta))
	}
	for i, x := range preds {
		if x == nil {
			return b.Fail(fmt.Errorf("box_regression: prediction %d is missing", i))
		}
	}
	op := newFlatLoss(b, "box_regression", &boxTerms{t: t, beta: beta}, preds)
	op.impl.(*boxTerms).fs = &op.fs
	return b.apply(op, preds...)
}

// boxTerms are BoxRegression's terms: four per sample (its coordinates).
type boxTerms struct {
	t    *BoxTargets
	beta float64
	fs   *flatSpace
}

func (op *boxTerms) targetNorm() float32 { return op.t.Norm }
func (op *boxTerms) setLast(v float64)   { op.t.last = v }

func (op *boxTerms) stride(i int) int {
	if len(op.t.Stride) == 0 {
		return int(op.t.CommonStride)
	}
	return int(op.t.Stride[i])
}

func (op *boxTerms) checkTargets() error {
	t := op.t
	if len(t.Base) != len(t.Target) {
		return fmt.Errorf("box_regression: %d bases but %d targets", len(t.Base), len(t.Target))
	}
	if len(t.Stride) != 0 && len(t.Stride) != len(t.Base) {
		return fmt.Errorf("box_regression: %d strides for %d samples (leave Stride empty to use CommonStride)", len(t.Stride), len(t.Base))
	}
	n := op.fs.total()
	for i, g := range t.Base {
		s := op.stride(i)
		if s < 1 {
			return fmt.Errorf("box_regression: sample %d has stride %d, want >= 1", i, s)
		}
		if g < 0 || int(g)+3*s >= n {
			return fmt.Errorf("box_regression: sample %d (base %d, stride %d) reaches past the %d predictions", i, g, s, n)
		}
	}
	return nil
}

func (op *boxTerms) terms(lo, hi int, x func(int) float64, emit func(int, float64, float64)) {
	for i, base := range op.t.Base {
		st := op.stride(i)
		for c := 0; c < 4; c++ {
			if g := int(base) + c*st; g >= lo && g < hi {
				l, d := smoothL1(x(g)-float64(op.t.Target[i][c]), op.beta)
				emit(g, l, d)
			}
		}
	}
}

// smoothL1 returns torch's smooth_l1(d, beta) (l1 when beta == 0) and its
// derivative.
func smoothL1(d, beta float64) (float64, float64) {
	a := math.Abs(d)
	if a < beta {
		return 0.5 * d * d / beta, d / beta
	}
	var s float64
	switch {
	case d > 0:
		s = 1
	case d < 0:
		s = -1
	}
	return a - 0.5*beta, s
}

// ---------------------------------------------------------------------
// Scalar sums

// AddScalars returns the sum of scalar nodes (the total loss).
func (b *Builder) AddScalars(xs ...*G.Node) *G.Node {
	w := make([]float32, len(xs))
	fill(w, 1)
	return b.WeightedSum(w, xs...)
}

// WeightedSum returns sum_i w[i] * xs[i] for scalar nodes xs and constant
// weights (e.g. det_loss + lambda * kd_loss). Its value is accumulated in
// float64 from the inputs' own float64 values when they are losses of
// this package.
func (b *Builder) WeightedSum(w []float32, xs ...*G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	if len(xs) == 0 || len(w) != len(xs) {
		return b.Fail(fmt.Errorf("weighted_sum: %d weights for %d scalars (need at least one)", len(w), len(xs)))
	}
	op := &sumOp{lossBase: lossBase{opBase: opBase{name: "weighted_sum", id: b.nextID()}}, w: append([]float32(nil), w...)}
	for i, x := range xs {
		if x == nil {
			return b.Fail(fmt.Errorf("weighted_sum: input %d is missing", i))
		}
		if !x.IsScalar() {
			return b.Fail(fmt.Errorf("weighted_sum: input %d (%v) has shape %v, want a scalar", i, x.Name(), x.Shape()))
		}
		op.need = append(op.need, b.NeedsGrad(x))
		var lv lastValuer
		if v, ok := x.Op().(lastValuer); ok {
			lv = v
		}
		op.srcs = append(op.srcs, lv)
	}
	return b.apply(op, xs...)
}

type sumOp struct {
	lossBase
	w    []float32
	need []bool
	srcs []lastValuer // float64 value of each input when it has one
}

func (op *sumOp) Arity() int         { return len(op.w) }
func (op *sumOp) Type() hm.Type      { return scalarFnType(len(op.w)) }
func (op *sumOp) DiffWRT(int) []bool { return append([]bool(nil), op.need...) }
func (op *sumOp) Do(in ...G.Value) (G.Value, error) {
	if len(in) != len(op.w) {
		return nil, fmt.Errorf("%s: %d inputs, want %d", op.name, len(in), len(op.w))
	}
	var s float64
	for i, v := range in {
		x, err := scalarOf(v)
		if err != nil {
			return nil, fmt.Errorf("%s: input %d: %w", op.name, i, err)
		}
		xv := float64(x)
		// An input's float64 value is used only when it agrees with the
		// register (it ran in this run and nothing rewrote it).
		if src := op.srcs[i]; src != nil && float32(src.lastValue()) == x {
			xv = src.lastValue()
		}
		s += float64(op.w[i]) * xv
	}
	return op.result(s), nil
}

func (op *sumOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	ret := make(G.Nodes, len(inputs))
	for i := range inputs {
		if !op.need[i] {
			continue
		}
		if op.w[i] == 1 {
			ret[i] = grad
			continue
		}
		var err error
		sop := &scaleScalarOp{lossBase: lossBase{opBase: opBase{name: fmt.Sprintf("%s.d%d", op.name, i), id: op.id}}, w: op.w[i]}
		if ret[i], err = G.ApplyOp(sop, grad); err != nil {
			return nil, err
		}
	}
	return ret, nil
}

// scaleScalarOp: w * g for a scalar g.
type scaleScalarOp struct {
	lossBase
	w float32
}

func (op *scaleScalarOp) Arity() int    { return 1 }
func (op *scaleScalarOp) Type() hm.Type { return scalarFnType(1) }
func (op *scaleScalarOp) Do(in ...G.Value) (G.Value, error) {
	g, err := scalarOf(in[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	return op.result(float64(op.w) * float64(g)), nil
}
