package layers

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/internal/golden"
)

// lossRig is a compiled graph: scalar loss = build(inputs), with the
// gradients of the loss with respect to every input.
type lossRig struct {
	m     *Machine
	loss  *G.Node
	ins   []*tensor.Dense
	grads []*G.Node
}

// newLossRig builds the graph on inputs of the given shapes and values
// (every input requires a gradient).
func newLossRig(t *testing.T, shapes [][]int, vals [][]float32, build func(b *Builder, ins []*G.Node) *G.Node) *lossRig {
	t.Helper()
	b := NewBuilder(NewRegistry())
	r := &lossRig{}
	var ins []*G.Node
	for i, s := range shapes {
		n := b.InputRequiringGrad("in"+string(rune('0'+i)), s...)
		v := tensor.New(tensor.WithShape(s...), tensor.WithBacking(append([]float32(nil), vals[i]...)))
		if err := G.Let(n, v); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, n)
		r.ins = append(r.ins, v)
	}
	r.loss = build(b, ins)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(r.loss, ins...)
	if err != nil {
		t.Fatal(err)
	}
	r.grads = grads
	if r.m, err = NewMachine(b.G); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.m.Close() })
	return r
}

// run executes the graph and returns the float64 loss value.
func (r *lossRig) run(t *testing.T) float64 {
	t.Helper()
	if err := r.m.Run(); err != nil {
		t.Fatal(err)
	}
	v, ok := LossValue(r.loss)
	if !ok {
		t.Fatal("LossValue: not a loss node")
	}
	return v
}

// gradsCopy returns copies of the analytic gradients of the last run.
func (r *lossRig) gradsCopy() [][]float32 {
	out := make([][]float32, len(r.grads))
	for i, g := range r.grads {
		out[i] = append([]float32(nil), g.Value().Data().([]float32)...)
	}
	return out
}

// checkFD compares every analytic gradient element with a central finite
// difference of the float64 loss value (the step actually taken in
// float32 is used as the denominator).
func (r *lossRig) checkFD(t *testing.T, eps, tol float64) {
	t.Helper()
	r.run(t)
	an := r.gradsCopy()
	for i, in := range r.ins {
		d := in.Data().([]float32)
		for j := range d {
			orig := d[j]
			d[j] = float32(float64(orig) + eps)
			xp := float64(d[j])
			lp := r.run(t)
			d[j] = float32(float64(orig) - eps)
			xm := float64(d[j])
			lm := r.run(t)
			d[j] = orig
			fd := (lp - lm) / (xp - xm)
			if a := float64(an[i][j]); math.Abs(fd-a) > tol*(1+math.Abs(fd)) {
				t.Errorf("input %d elem %d: analytic %.7g, finite difference %.7g", i, j, a, fd)
			}
		}
	}
}

func randVals(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

func TestSigmoidBCEFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	shapes := [][]int{{2, 3, 2, 2}, {1, 3, 3}}
	vals := [][]float32{randVals(rng, 24, 3), randVals(rng, 9, 3)}
	tg := &BCETargets{Norm: 7}
	for i := 0; i < 20; i++ {
		tg.Index = append(tg.Index, int32(rng.Intn(33)))
		tg.Target = append(tg.Target, float32(rng.Intn(2)))
	}
	tg.Index[5] = tg.Index[4] // repeated sample
	tg.Target[6] = 0.3        // soft label
	r := newLossRig(t, shapes, vals, func(b *Builder, ins []*G.Node) *G.Node { return b.SigmoidBCE(tg, ins...) })
	r.checkFD(t, 1e-3, 1e-4)
	if tg.Last() != mustLoss(t, r.loss) || tg.Last() <= 0 {
		t.Errorf("targets' Last %v, LossValue %v", tg.Last(), mustLoss(t, r.loss))
	}
}

func TestSoftmaxCEFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	tg := &CETargets{Label: []int32{0, 3, -1, 2, 1, -1, 0}, Norm: 5}
	r := newLossRig(t, [][]int{{7, 4}}, [][]float32{randVals(rng, 28, 2)},
		func(b *Builder, ins []*G.Node) *G.Node { return b.SoftmaxCE(tg, ins[0]) })
	r.checkFD(t, 1e-3, 1e-4)
	// ignored rows have exactly zero gradient
	g := r.gradsCopy()[0]
	for _, row := range []int{2, 5} {
		for c := 0; c < 4; c++ {
			if g[row*4+c] != 0 {
				t.Errorf("ignored row %d has gradient %v", row, g[row*4+c])
			}
		}
	}
}

// boxCase returns RPN-like predictions over two levels and samples whose
// differences stay clear of the smooth-L1 kinks (at |d| = beta, and 0 for
// L1), so central differences are exact to O(eps^2).
func boxCase(rng *rand.Rand, beta float64) ([][]int, [][]float32, *BoxTargets) {
	shapes := [][]int{{1, 8, 2, 3}, {1, 8, 1, 2}} // [N, A*4, H, W], A = 2
	vals := [][]float32{randVals(rng, 48, 0.3), randVals(rng, 16, 0.3)}
	tg := &BoxTargets{Norm: 9}
	for i := 0; i < 7; i++ {
		lvl := rng.Intn(2)
		hw := shapes[lvl][2] * shapes[lvl][3]
		off := 0
		if lvl == 1 {
			off = 48
		}
		base := off + rng.Intn(2)*4*hw + rng.Intn(hw)
		tg.Base = append(tg.Base, int32(base))
		tg.Stride = append(tg.Stride, int32(hw))
		var tv [4]float32
		for c := range tv {
			gi := base + c*hw
			var p float32
			if gi < 48 {
				p = vals[0][gi]
			} else {
				p = vals[1][gi-48]
			}
			for {
				tv[c] = float32(rng.NormFloat64() * 0.3)
				d := math.Abs(float64(p - tv[c]))
				if math.Abs(d-beta) > 0.02 && d > 0.02 {
					break
				}
			}
		}
		tg.Target = append(tg.Target, tv)
	}
	return shapes, vals, tg
}

func TestBoxRegressionFiniteDifferences(t *testing.T) {
	for _, beta := range []float64{1.0 / 9, 0} {
		rng := rand.New(rand.NewSource(3))
		shapes, vals, tg := boxCase(rng, beta)
		r := newLossRig(t, shapes, vals, func(b *Builder, ins []*G.Node) *G.Node { return b.BoxRegression(tg, beta, ins...) })
		r.checkFD(t, 1e-3, 1e-4)
	}
	// RoI layout: [K, 4*C] with one common stride.
	rng := rand.New(rand.NewSource(4))
	tg := &BoxTargets{Base: []int32{0, 12 + 4, 36 + 8}, CommonStride: 1, Norm: 4,
		Target: [][4]float32{{0.5, -0.5, 1, 2}, {0, 0.05, -0.05, 0.3}, {-1, 1, 0.2, -0.3}}}
	r := newLossRig(t, [][]int{{4, 12}}, [][]float32{randVals(rng, 48, 0.5)},
		func(b *Builder, ins []*G.Node) *G.Node { return b.BoxRegression(tg, 1.0/9, ins...) })
	r.checkFD(t, 1e-3, 1e-4)
}

func TestWeightedSumFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	ce := &CETargets{Label: []int32{1, 0, 2}, Norm: 3}
	bce := &BCETargets{Index: []int32{0, 4, 7}, Target: []float32{1, 0, 1}, Norm: 3}
	r := newLossRig(t, [][]int{{3, 3}, {2, 4}}, [][]float32{randVals(rng, 9, 1), randVals(rng, 8, 1)},
		func(b *Builder, ins []*G.Node) *G.Node {
			sum := b.AddScalars(b.SoftmaxCE(ce, ins[0]), b.SigmoidBCE(bce, ins[1]))
			return b.WeightedSum([]float32{1, 2.5}, sum, b.Dot(ins[1], []float32{1, 2, 3, 4, 5, 6, 7, 8}))
		})
	r.checkFD(t, 1e-3, 1e-4)
	var dot float64
	for i, v := range r.ins[1].Data().([]float32) {
		dot += float64(v) * float64(i+1)
	}
	want := ce.Last() + bce.Last() + 2.5*dot
	if got := r.run(t); math.Abs(got-want) > 1e-5*math.Abs(want) {
		t.Errorf("weighted sum %v, parts give %v", got, want)
	}
}

func mustLoss(t *testing.T, n *G.Node) float64 {
	t.Helper()
	v, ok := LossValue(n)
	if !ok {
		t.Fatal("not a loss node")
	}
	return v
}

// TestLossesEmptyTargetsAndNormGuard: no samples give a zero loss and
// zero, finite gradients; Norm <= 0 divides by 1.
func TestLossesEmptyTargetsAndNormGuard(t *testing.T) {
	bce := &BCETargets{}
	ce := &CETargets{Label: []int32{-1, -1}}
	box := &BoxTargets{CommonStride: 1}
	r := newLossRig(t, [][]int{{2, 3}, {2, 3}, {2, 8}}, [][]float32{{1, 2, 3, 4, 5, 6}, {1, 2, 3, 4, 5, 6}, make([]float32, 16)},
		func(b *Builder, ins []*G.Node) *G.Node {
			return b.AddScalars(b.SigmoidBCE(bce, ins[0]), b.SoftmaxCE(ce, ins[1]), b.BoxRegression(box, 1.0/9, ins[2]))
		})
	for it := 0; it < 2; it++ {
		if v := r.run(t); v != 0 {
			t.Errorf("empty targets: loss %v, want 0", v)
		}
		for i, g := range r.gradsCopy() {
			for j, v := range g {
				if v != 0 {
					t.Fatalf("empty targets: gradient %d[%d] = %v, want 0", i, j, v)
				}
			}
		}
		// The second pass: fill and empty again (stale gradients must go).
		bce.Index, bce.Target, bce.Norm = []int32{1}, []float32{1}, 0
		r.run(t)
		want, _ := bceTerm(2, 1)
		if math.Abs(bce.Last()-want) > 1e-12 {
			t.Errorf("Norm 0: loss %v, want %v (norm treated as 1)", bce.Last(), want)
		}
		bce.Norm = -3
		r.run(t)
		if math.Abs(bce.Last()-want) > 1e-12 {
			t.Errorf("Norm -3: loss %v, want %v (norm treated as 1)", bce.Last(), want)
		}
		bce.Index, bce.Target, bce.Norm = nil, nil, 0
	}
}

// TestLossesRejectBadTargets: bad targets make Run fail with an error
// naming the loss, without panicking.
func TestLossesRejectBadTargets(t *testing.T) {
	bce := &BCETargets{Index: []int32{0}, Target: []float32{1}, Norm: 1}
	ce := &CETargets{Label: []int32{0, 1}, Norm: 1}
	box := &BoxTargets{Base: []int32{0}, CommonStride: 1, Target: [][4]float32{{}}, Norm: 1}
	r := newLossRig(t, [][]int{{2, 3}, {2, 3}, {2, 8}}, [][]float32{make([]float32, 6), make([]float32, 6), make([]float32, 16)},
		func(b *Builder, ins []*G.Node) *G.Node {
			return b.AddScalars(b.SigmoidBCE(bce, ins[0]), b.SoftmaxCE(ce, ins[1]), b.BoxRegression(box, 1.0/9, ins[2]))
		})
	r.run(t)
	cases := []struct {
		name, want string
		set, undo  func()
	}{
		{"bce index", "sigmoid_bce", func() { bce.Index[0] = 6 }, func() { bce.Index[0] = 0 }},
		{"bce negative", "sigmoid_bce", func() { bce.Index[0] = -1 }, func() { bce.Index[0] = 0 }},
		{"bce lengths", "sigmoid_bce", func() { bce.Target = nil }, func() { bce.Target = []float32{1} }},
		{"ce label", "softmax_ce", func() { ce.Label[1] = 3 }, func() { ce.Label[1] = 1 }},
		{"ce rows", "softmax_ce", func() { ce.Label = ce.Label[:1] }, func() { ce.Label = []int32{0, 1} }},
		{"box range", "box_regression", func() { box.Base[0] = 13 }, func() { box.Base[0] = 0 }},
		{"box stride", "box_regression", func() { box.CommonStride = 0 }, func() { box.CommonStride = 1 }},
		{"box strides", "box_regression", func() { box.Stride = []int32{1, 1} }, func() { box.Stride = nil }},
	}
	for _, c := range cases {
		c.set()
		err := r.m.Run()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.want)
		}
		c.undo()
		r.run(t)
	}
	b := NewBuilder(NewRegistry())
	x := b.Input("x", 2, 3, 4)
	if b.SoftmaxCE(ce, x); b.Err() == nil {
		t.Error("SoftmaxCE accepted a 3-D input")
	}
	b = NewBuilder(NewRegistry())
	if b.BoxRegression(box, -1, b.Input("x", 2, 8)); b.Err() == nil {
		t.Error("BoxRegression accepted beta < 0")
	}
	b = NewBuilder(NewRegistry())
	if b.WeightedSum([]float32{1}, b.Input("x", 2)); b.Err() == nil {
		t.Error("WeightedSum accepted a vector")
	}
}

// lossGolden loads layers/testdata/losses (scripts/golden_losses.py).
func lossGolden(t *testing.T) *golden.File {
	t.Helper()
	f, err := golden.Load("testdata/losses")
	if err != nil {
		t.Fatalf("%v (regenerate with /usr/bin/python3 scripts/golden_losses.py)", err)
	}
	return f
}

// goldenArr returns a stored array, which must be complete (step 1).
func goldenArr(t *testing.T, f *golden.File, name string) *golden.Array {
	t.Helper()
	a := f.Arrays[name]
	if a == nil {
		t.Fatalf("golden array %q missing", name)
	}
	if a.Step != 1 {
		t.Fatalf("golden array %q is subsampled", name)
	}
	return a
}

func goldenInts(t *testing.T, f *golden.File, name string) []int32 {
	a := goldenArr(t, f, name)
	out := make([]int32, len(a.Data))
	for i, v := range a.Data {
		out[i] = int32(v)
		if float32(out[i]) != v {
			t.Fatalf("%s[%d] = %v is not an integer", name, i, v)
		}
	}
	return out
}

func goldenBoxes(t *testing.T, f *golden.File, name string) [][4]float32 {
	a := goldenArr(t, f, name)
	out := make([][4]float32, len(a.Data)/4)
	for i := range out {
		copy(out[i][:], a.Data[4*i:])
	}
	return out
}

// compareGolden checks got against a stored array to rel relative to the
// array's largest magnitude.
func compareGolden(t *testing.T, f *golden.File, name string, got []float32, rel float64) {
	t.Helper()
	a := goldenArr(t, f, name)
	maxErr, scale, err := a.Compare(got)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Logf("%s: rel error %.2g", name, maxErr/scale)
	if scale == 0 || maxErr > rel*scale {
		t.Errorf("%s: max error %.3g, reference scale %.3g (rel %.2g > %.0g)", name, maxErr, scale, maxErr/scale, rel)
	}
}

func compareScalar(t *testing.T, f *golden.File, name string, got float64, rel float64) {
	t.Helper()
	want := float64(goldenArr(t, f, name).Data[0])
	t.Logf("%s: %.8g, PyTorch %.8g (rel %.2g)", name, got, want, math.Abs(got-want)/math.Abs(want))
	if math.Abs(got-want) > rel*math.Abs(want) {
		t.Errorf("%s: %.8g, PyTorch %.8g", name, got, want)
	}
}

func detVals(name string, shape []int, scale float64) []float32 {
	return detrand.Symmetric(name, tensor.Shape(shape).TotalSize(), scale)
}

const parityRel = 1e-5

func TestSigmoidBCEParityTorch(t *testing.T) {
	f := lossGolden(t)
	shapes := [][]int{{2, 3, 4, 5}, {2, 3, 2, 3}}
	vals := [][]float32{detVals("bce/x0", shapes[0], 6), detVals("bce/x1", shapes[1], 6)}
	tg := &BCETargets{Index: goldenInts(t, f, "bce/index"), Target: goldenArr(t, f, "bce/target").Data}
	tg.Norm = float32(len(tg.Index))
	r := newLossRig(t, shapes, vals, func(b *Builder, ins []*G.Node) *G.Node { return b.SigmoidBCE(tg, ins...) })
	compareScalar(t, f, "bce/loss", r.run(t), parityRel)
	g := r.gradsCopy()
	compareGolden(t, f, "bce/dx0", g[0], parityRel)
	compareGolden(t, f, "bce/dx1", g[1], parityRel)
}

func TestSoftmaxCEParityTorch(t *testing.T) {
	f := lossGolden(t)
	for _, c := range []struct {
		tag   string
		scale float64
	}{{"ce", 3}, {"ce_large", 60}} {
		tg := &CETargets{Label: goldenInts(t, f, c.tag+"/label"), Norm: goldenArr(t, f, c.tag+"/norm").Data[0]}
		r := newLossRig(t, [][]int{{12, 5}}, [][]float32{detVals(c.tag+"/x", []int{12, 5}, c.scale)},
			func(b *Builder, ins []*G.Node) *G.Node { return b.SoftmaxCE(tg, ins[0]) })
		compareScalar(t, f, c.tag+"/loss", r.run(t), parityRel)
		compareGolden(t, f, c.tag+"/dx", r.gradsCopy()[0], parityRel)
	}
}

func TestBoxRegressionParityTorch(t *testing.T) {
	f := lossGolden(t)
	for _, tag := range []string{"box_roi", "box_roi_l1"} {
		beta, ok := f.Meta[tag+"/beta"].(float64)
		if !ok {
			t.Fatalf("%s/beta missing from the golden meta", tag)
		}
		tg := &BoxTargets{Base: goldenInts(t, f, tag+"/base"), CommonStride: 1,
			Target: goldenBoxes(t, f, tag+"/target"), Norm: goldenArr(t, f, tag+"/norm").Data[0]}
		r := newLossRig(t, [][]int{{10, 12}}, [][]float32{detVals(tag+"/x", []int{10, 12}, 0.5)},
			func(b *Builder, ins []*G.Node) *G.Node { return b.BoxRegression(tg, beta, ins...) })
		compareScalar(t, f, tag+"/loss", r.run(t), parityRel)
		compareGolden(t, f, tag+"/dx", r.gradsCopy()[0], parityRel)
	}
	shapes := [][]int{{2, 12, 4, 5}, {2, 12, 2, 3}}
	vals := [][]float32{detVals("box_rpn/x0", shapes[0], 0.5), detVals("box_rpn/x1", shapes[1], 0.5)}
	tg := &BoxTargets{Base: goldenInts(t, f, "box_rpn/base"), Stride: goldenInts(t, f, "box_rpn/stride"),
		Target: goldenBoxes(t, f, "box_rpn/target"), Norm: goldenArr(t, f, "box_rpn/norm").Data[0]}
	r := newLossRig(t, shapes, vals, func(b *Builder, ins []*G.Node) *G.Node { return b.BoxRegression(tg, 1.0/9, ins...) })
	compareScalar(t, f, "box_rpn/loss", r.run(t), parityRel)
	g := r.gradsCopy()
	compareGolden(t, f, "box_rpn/dx0", g[0], parityRel)
	compareGolden(t, f, "box_rpn/dx1", g[1], parityRel)
}
