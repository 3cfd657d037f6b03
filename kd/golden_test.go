package kd

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/internal/golden"
	"github.com/skd-go/skd/layers"
)

// Golden references come from scripts/golden_kd.py (PyTorch 1.13 autograd
// of the published formulas, skimage 0.19): see that script's docstring.

func loadGolden(t *testing.T) *golden.File {
	t.Helper()
	f, err := golden.Load("testdata/kd")
	if err != nil {
		t.Fatalf("golden file: %v (regenerate with /usr/bin/python3 scripts/golden_kd.py)", err)
	}
	return f
}

func garr(t *testing.T, f *golden.File, name string) *golden.Array {
	t.Helper()
	a, ok := f.Arrays[name]
	if !ok {
		t.Fatalf("golden array %q missing", name)
	}
	return a
}

// checkScalar compares a loss value with the stored reference (relative).
func checkScalar(t *testing.T, f *golden.File, name string, got, tol float64) {
	t.Helper()
	want := float64(garr(t, f, name).Data[0])
	rel := math.Abs(got-want) / math.Max(math.Abs(want), 1e-30)
	t.Logf("%s: %.9g vs torch %.9g (rel %.2e)", name, got, want, rel)
	if !(rel <= tol) {
		t.Errorf("%s = %.9g, torch %.9g (relative error %.2e > %.0e)", name, got, want, rel, tol)
	}
}

// checkArray compares a full array with the stored reference; the error
// is relative to the reference's largest magnitude.
func checkArray(t *testing.T, f *golden.File, name string, got []float32, tol float64) {
	t.Helper()
	maxErr, scale, err := garr(t, f, name).Compare(got)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	rel := maxErr / math.Max(scale, 1e-30)
	t.Logf("%s: max abs error %.3g (max |ref| %.3g, rel %.2e)", name, maxErr, scale, rel)
	if !(rel <= tol) {
		t.Errorf("%s: max abs error %.3g against max |ref| %.3g (relative %.2e > %.0e)", name, maxErr, scale, rel, tol)
	}
}

type ssimCase struct {
	name  string
	shape [4]int
	cfg   SSIMConfig
	unit  bool // inputs mapped to [0, 1] (normalize "none")
}

var ssimCases = []ssimCase{
	{"base", [4]int{2, 3, 32, 40}, SSIMConfig{}, false},
	{"level", [4]int{1, 4, 13, 17}, SSIMConfig{Normalize: "level"}, false},
	{"small6x7", [4]int{1, 2, 6, 7}, SSIMConfig{}, false},
	{"small4x5", [4]int{1, 2, 4, 5}, SSIMConfig{}, false},
	{"small2x3", [4]int{1, 1, 2, 3}, SSIMConfig{}, false},
	{"cs", [4]int{1, 3, 12, 14}, SSIMConfig{Terms: "cs"}, false},
	{"s", [4]int{1, 3, 12, 14}, SSIMConfig{Terms: "s"}, false},
	{"valid", [4]int{1, 2, 16, 19}, SSIMConfig{Padding: "valid"}, false},
	{"valid_small", [4]int{1, 2, 4, 6}, SSIMConfig{Padding: "valid"}, false},
	{"none", [4]int{1, 2, 10, 12}, SSIMConfig{Normalize: "none"}, true},
	{"win7", [4]int{2, 2, 9, 11}, SSIMConfig{Window: 7, Sigma: 1.0}, false},
}

func numel(s [4]int) int { return s[0] * s[1] * s[2] * s[3] }

func (c ssimCase) inputs() ([]float32, []float32) {
	n := numel(c.shape)
	x := detrand.Symmetric("kd/ssim/"+c.name+"/x", n, 1)
	t := detrand.Symmetric("kd/ssim/"+c.name+"/t", n, 1)
	if c.unit {
		for i := range x {
			x[i] = float32((float64(x[i]) + 1) / 2)
			t[i] = float32((float64(t[i]) + 1) / 2)
		}
	}
	return x, t
}

// TestSSIMLossTorchParity: loss and gradient against PyTorch autograd of
// the kornia formulation, including the small-map rule.
func TestSSIMLossTorchParity(t *testing.T) {
	f := loadGolden(t)
	for _, c := range ssimCases {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewSSIM(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			x, tt := c.inputs()
			g := make([]float32, len(x))
			v, err := s.Loss(x, tt, c.shape, g)
			if err != nil {
				t.Fatal(err)
			}
			checkScalar(t, f, "ssim/"+c.name+"/loss", v, 1e-6)
			checkArray(t, f, "ssim/"+c.name+"/dx", g, 1e-5)
		})
	}
}

// TestSSIMMapSkimage: the SSIM map's interior against skimage's
// structural_similarity on the same normalised maps.
func TestSSIMMapSkimage(t *testing.T) {
	f := loadGolden(t)
	c := ssimCases[0]
	s, err := NewSSIM(SSIMConfig{})
	if err != nil {
		t.Fatal(err)
	}
	x, tt := c.inputs()
	m, err := s.Map(x, tt, c.shape)
	if err != nil {
		t.Fatal(err)
	}
	h, w := c.shape[2], c.shape[3]
	var interior []float32
	for p := 0; p < c.shape[0]*c.shape[1]; p++ {
		for r := 5; r < h-5; r++ {
			for q := 5; q < w-5; q++ {
				interior = append(interior, float32(m[p*h*w+r*w+q]))
			}
		}
	}
	checkArray(t, f, "skimage/base/interior", interior, 1e-5)
}

func TestOtherLossesTorchParity(t *testing.T) {
	f := loadGolden(t)
	shape := [4]int{2, 3, 5, 7}
	cases := []struct {
		name string
		loss LevelLoss
	}{
		{"l1", &L1{}}, {"l2", &L2{}}, {"pkd", &PKD{}}, {"cwd1", &CWD{Tau: 1}}, {"cwd2", &CWD{Tau: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := detrand.Symmetric("kd/"+c.name+"/x", numel(shape), 2)
			tt := detrand.Symmetric("kd/"+c.name+"/t", numel(shape), 2)
			g := make([]float32, len(x))
			v, err := c.loss.Loss(x, tt, shape, g)
			if err != nil {
				t.Fatal(err)
			}
			checkScalar(t, f, c.name+"/loss", v, 1e-6)
			checkArray(t, f, c.name+"/dx", g, 1e-5)
		})
	}
}

// seqSource replays fixed uniforms (the golden script's mask draws).
type seqSource struct {
	u []float64
	i int
}

func (s *seqSource) Float64() float64 { v := s.u[s.i%len(s.u)]; s.i++; return v }

// setParams overwrites every registry parameter with its detrand value
// (golden_common.param in the script).
func setParams(reg *layers.Registry) {
	for _, p := range reg.Params() {
		copy(p.Data(), detrand.Param(p.Name, p.Shape()))
	}
}

// distRig is a compiled student graph with the distillation loss.
type distRig struct {
	m       *layers.Machine
	d       *Distiller
	loss    *G.Node
	per     []*G.Node
	xs      []*tensor.Dense
	grads   []*G.Node // wrt inputs, then trainable params
	params  []*layers.Param
	teacher *Teacher
}

func newDistRig(t testing.TB, cfg Config, cs, ct []int, shapes [][4]int, xname, tname string, init func(*layers.Registry)) *distRig {
	t.Helper()
	reg := layers.NewRegistry()
	d, err := NewDistiller(reg, cfg, cs, ct, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if init != nil {
		init(reg)
	}
	r := &distRig{d: d, teacher: &Teacher{}}
	b := layers.NewBuilder(reg)
	if rigArena != nil {
		b.UseArena(rigArena)
	}
	var ins []*G.Node
	for i, s := range shapes {
		n := b.InputRequiringGrad("x"+string(rune('0'+i)), s[:]...)
		v := tensor.New(tensor.WithShape(s[:]...), tensor.WithBacking(detrand.Symmetric(xname+string(rune('0'+i)), numel(s), 1)))
		if err := G.Let(n, v); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, n)
		r.xs = append(r.xs, v)
		ts := [4]int{s[0], ct[i], s[2], s[3]}
		r.teacher.Levels = append(r.teacher.Levels, detrand.Symmetric(tname+string(rune('0'+i)), numel(ts), 1))
		r.teacher.Shapes = append(r.teacher.Shapes, ts)
	}
	r.loss, r.per, err = d.Build(b, ins, r.teacher)
	if err != nil {
		t.Fatal(err)
	}
	pn, ps := b.TrainableNodes()
	r.params = ps
	// inputs of levels that are not distilled get a nil gradient
	used := map[int]bool{}
	for _, l := range d.Levels() {
		used[l] = true
	}
	var wrt []*G.Node
	for i, n := range ins {
		if used[i] {
			wrt = append(wrt, n)
		}
	}
	gs, err := G.Grad(r.loss, append(wrt, pn...)...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ins {
		if used[i] {
			r.grads = append(r.grads, gs[0])
			gs = gs[1:]
		} else {
			r.grads = append(r.grads, nil)
		}
	}
	r.grads = append(r.grads, gs...)
	if r.m, err = b.Compile(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.m.Close() })
	return r
}

// rigArena, when set, makes newDistRig plan its graph into it.
var rigArena *layers.Arena

func (r *distRig) run(t testing.TB) float64 {
	t.Helper()
	if err := r.m.Run(); err != nil {
		t.Fatal(err)
	}
	v, ok := r.d.Value(r.loss)
	if !ok {
		t.Fatal("total is not a loss node")
	}
	return v
}

func gradData(n *G.Node) []float32 { return append([]float32(nil), n.Value().Data().([]float32)...) }

// TestDistillerSSIMAdapterTorchParity: two levels, 1x1 adapters 3 -> 4,
// weight 2: per-level values, total, and gradients with respect to the
// student maps and the adapters against PyTorch.
func TestDistillerSSIMAdapterTorchParity(t *testing.T) {
	f := loadGolden(t)
	r := newDistRig(t, Config{Adapter: true}, []int{3, 3}, []int{4, 4}, [][4]int{{2, 3, 12, 14}, {2, 3, 6, 7}}, "kd/dist/x", "kd/dist/t", setParams)
	total := r.run(t)
	checkScalar(t, f, "dist/total", total, 1e-6)
	lv, tot64 := r.d.LastLevels()
	for i := range lv {
		v, _ := r.d.Value(r.per[i])
		if v != lv[i] {
			t.Errorf("level %d: Value %v, LastLevels %v", i, v, lv[i])
		}
		checkScalar(t, f, "dist/level"+string(rune('0'+i)), v, 1e-6)
	}
	checkScalar(t, f, "dist/total", tot64, 1e-6)
	for i := 0; i < 2; i++ {
		s := string(rune('0' + i))
		checkArray(t, f, "dist/dx"+s, gradData(r.grads[i]), 1e-5)
	}
	for j, p := range r.params {
		var name string
		switch p.Name {
		case "distill.adapter.0.weight":
			name = "dist/dw0"
		case "distill.adapter.0.bias":
			name = "dist/db0"
		case "distill.adapter.1.weight":
			name = "dist/dw1"
		case "distill.adapter.1.bias":
			name = "dist/db1"
		default:
			t.Fatalf("unexpected parameter %s", p.Name)
		}
		if name[len(name)-3:len(name)-1] == "db" {
			// psi is shift-invariant per channel: the bias gets no
			// gradient (torch: ~1e-18); ours must be tiny next to dw's.
			g := gradData(r.grads[2+j])
			maxErr, _, err := garr(t, f, name).Compare(g)
			if err != nil || maxErr > 1e-6*garr(t, f, "dist/dw0").AbsMax {
				t.Errorf("%s: max abs error %.3g (%v), want ~0", name, maxErr, err)
			}
			continue
		}
		checkArray(t, f, name, gradData(r.grads[2+j]), 1e-5)
	}
}

// TestMGDTorchParity: MGD with an adapter, the script's mask and weights.
func TestMGDTorchParity(t *testing.T) {
	f := loadGolden(t)
	r := newDistRig(t, Config{Loss: "mgd", Adapter: true}, []int{3}, []int{4}, [][4]int{{2, 3, 6, 5}}, "kd/mgd/", "kd/mgd/", setParams)
	// the rig names inputs name+index; rebuild with the script's names
	copy(r.xs[0].Data().([]float32), detrand.Symmetric("kd/mgd/x", 2*3*6*5, 1))
	copy(r.teacher.Levels[0], detrand.Symmetric("kd/mgd/t", 2*4*6*5, 1))
	r.d.MaskSource = &seqSource{u: detrand.Uniform("kd/mgd/mask", 2*6*5)}
	total := r.run(t)
	checkScalar(t, f, "mgd/loss", total, 1e-5)
	checkArray(t, f, "mgd/dx", gradData(r.grads[0]), 1e-5)
	for j, p := range r.params {
		checkArray(t, f, "mgd/d/"+p.Name, gradData(r.grads[1+j]), 1e-5)
	}
	_, tot64 := r.d.LastLevels()
	checkScalar(t, f, "mgd/loss", tot64, 1e-6)
}
