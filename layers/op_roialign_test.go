package layers

import (
	"fmt"
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/internal/golden"
	"github.com/skd-go/skd/kernels"
)

// msConstRoIs returns a constant [K, 5] node holding rois.
func msConstRoIs(b *Builder, rois []float32) *G.Node {
	v := tensor.New(tensor.WithShape(len(rois)/5, 5), tensor.WithBacking(append([]float32(nil), rois...)))
	return G.NewTensor(b.G, tensor.Float32, 2, G.WithShape(len(rois)/5, 5), G.WithName("rois"), G.WithValue(v))
}

// TestMultiScaleRoIAlignGolden compares forward, level assignment and the
// gradient of sum(out * R) w.r.t. every level with torchvision 0.14's
// MultiScaleRoIAlign (scripts/golden_roialign.py) on P2..P5 of a 96x128
// batch of two images.
func TestMultiScaleRoIAlignGolden(t *testing.T) {
	gf, err := golden.Load("testdata/roialign")
	if err != nil {
		t.Fatal(err)
	}
	ra := gf.Arrays["ms/rois"]
	if ra == nil || ra.Step != 1 {
		t.Fatal("golden rois missing or subsampled")
	}
	rois := ra.Data
	k := len(rois) / 5
	shapes := [][]int{{2, 4, 24, 32}, {2, 4, 12, 16}, {2, 4, 6, 8}, {2, 4, 3, 4}}
	cases, _ := gf.Meta["ms_cases"].([]any)
	if len(cases) != 4 {
		t.Fatalf("%d multiscale cases in the golden file, want 4", len(cases))
	}
	for _, ci := range cases {
		m := ci.(map[string]any)
		name := m["name"].(string)
		cfg := RoIAlignConfig{
			OutputSize: int(m["size"].(float64)), SamplingRatio: int(m["sampling"].(float64)),
			Aligned: m["aligned"].(bool), CanonicalScale: 224, CanonicalLevel: 4, Eps: m["eps"].(float64),
		}
		t.Run(name, func(t *testing.T) {
			b := NewBuilder(NewRegistry())
			rn := b.Input("rois", k, 5)
			if err := G.Let(rn, tensor.New(tensor.WithShape(k, 5), tensor.WithBacking(append([]float32(nil), rois...)))); err != nil {
				t.Fatal(err)
			}
			var feats []*G.Node
			for l, s := range shapes {
				n := b.InputRequiringGrad(fmt.Sprintf("p%d", l+2), s...)
				v := tensor.New(tensor.WithShape(s...), tensor.WithBacking(detrand.Symmetric(fmt.Sprintf("roialign/ms/p%d", l+2), s[0]*s[1]*s[2]*s[3], 1)))
				if err := G.Let(n, v); err != nil {
					t.Fatal(err)
				}
				feats = append(feats, n)
			}
			out := b.MultiScaleRoIAlign(rn, feats, 96, 128, cfg)
			if err := b.Err(); err != nil {
				t.Fatal(err)
			}
			op := out.Op().(*msRoIAlignOp)
			// level assignment
			lv := gf.Arrays["ms/"+name+"/levels"].Data
			for r := 0; r < k; r++ {
				if got := op.mapper.level(rois[r*5 : r*5+5]); got != int(lv[r]) {
					t.Errorf("region %d %v: level %d, torchvision %g", r, rois[r*5+1:r*5+5], got, lv[r])
				}
			}
			numel := out.Shape().TotalSize()
			rv := tensor.New(tensor.WithShape(numel), tensor.WithBacking(detrand.Symmetric("roialign/ms/R/"+name, numel, 1)))
			rnode := G.NewVector(b.G, tensor.Float32, G.WithShape(numel), G.WithName("R"), G.WithValue(rv))
			kept := b.Keep(out)
			loss := G.Must(G.Sum(G.Must(G.HadamardProd(G.Must(G.Reshape(out, tensor.Shape{numel})), rnode))))
			grads, err := G.Grad(loss, feats...)
			if err != nil {
				t.Fatal(err)
			}
			var kg []*Kept
			for _, g := range grads {
				kg = append(kg, b.Keep(g))
			}
			mach, err := NewMachine(b.G)
			if err != nil {
				t.Fatal(err)
			}
			defer mach.Close()
			for run := 0; run < 2; run++ { // the second run reuses every register
				if err := mach.Run(); err != nil {
					t.Fatal(err)
				}
				check := func(what string, got []float32, ref *golden.Array) {
					t.Helper()
					maxErr, scale, err := ref.Compare(got)
					if err != nil {
						t.Fatal(err)
					}
					if run == 0 {
						t.Logf("%s: max abs error %.3g (reference max %.3g)", what, maxErr, scale)
					}
					if !(maxErr <= 1e-5*scale) {
						t.Errorf("run %d %s: max abs error %.3g > 1e-5 x %.3g", run, what, maxErr, scale)
					}
				}
				check("forward", kept.Data(), gf.Arrays["ms/"+name+"/out"])
				for l := range shapes {
					check(fmt.Sprintf("dP%d", l+2), kg[l].Data(), gf.Arrays[fmt.Sprintf("ms/%s/dp%d", name, l+2)])
				}
			}
		})
	}
}

// TestMultiScaleRoIAlignGradients checks the op's gradients w.r.t. the
// feature maps by finite differences (rois are a constant node, not
// differentiated), and that a padding row pools zeros and gives no
// gradient.
func TestMultiScaleRoIAlignGradients(t *testing.T) {
	rois := []float32{
		0, 2, 3, 20, 25, // P2
		1, -4, 6, 30, 26,
		0, 1, 1, 60, 60, // P3
		-1, 5, 5, 40, 40, // padding
		1, -10, -10, 100, 90, // P4 (clamped top)
		0, 10.5, 4.25, 10.75, 4.5, // tiny
	}
	for _, cfg := range []RoIAlignConfig{TorchvisionRoIAlign(), Detectron2RoIAlign()} {
		cfg.OutputSize = 3
		checkGrads(t, NewRegistry(), [][]int{{2, 2, 16, 16}, {2, 2, 8, 8}, {2, 2, 4, 4}}, func(b *Builder, ins []*G.Node) *G.Node {
			return b.MultiScaleRoIAlign(msConstRoIs(b, rois), ins, 64, 64, cfg)
		}, 1e-2)
	}
}

// TestMultiScaleRoIAlignFiniteDifferences is a stricter check than
// checkGrads' sampled one: the pooled output is linear in the features, so
// central differences of a float64 loss are exact up to rounding, and
// every element with a gradient (plus a sample of the rest) is checked.
func TestMultiScaleRoIAlignFiniteDifferences(t *testing.T) {
	rois := []float32{
		0, 2, 3, 20, 25,
		1, -4, 6, 30, 26,
		0, 1, 1, 60, 60,
		-1, 5, 5, 40, 40,
		1, -10, -10, 100, 90,
		0, 10.5, 4.25, 10.75, 4.5,
		1, 50, 50, 70, 66,
	}
	shapes := [][]int{{2, 2, 16, 16}, {2, 2, 8, 8}, {2, 2, 4, 4}}
	for ci, cfg := range []RoIAlignConfig{TorchvisionRoIAlign(), Detectron2RoIAlign()} {
		cfg.OutputSize = 3
		b := NewBuilder(NewRegistry())
		rn := msConstRoIs(b, rois)
		vals := []G.Value{rn.Value()}
		var feats []*G.Node
		for l, s := range shapes {
			feats = append(feats, b.InputRequiringGrad(fmt.Sprintf("f%d", l), s...))
			vals = append(vals, tensor.New(tensor.WithShape(s...), tensor.WithBacking(detrand.Symmetric(fmt.Sprintf("fd/f%d", l), s[0]*s[1]*s[2]*s[3], 1))))
		}
		out := b.MultiScaleRoIAlign(rn, feats, 64, 64, cfg)
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		op := out.Op().(*msRoIAlignOp)
		r := detrand.Symmetric("fd/R", out.Shape().TotalSize(), 1)
		loss := func() float64 {
			y, err := op.Do(vals...)
			if err != nil {
				t.Fatal(err)
			}
			s := 0.0
			for i, v := range y.Data().([]float32) {
				s += float64(v) * float64(r[i])
			}
			return s
		}
		dy := tensor.New(tensor.WithShape(out.Shape()...), tensor.WithBacking(r))
		checked := 0
		for l := range shapes {
			bwd := &msRoIAlignBwdOp{opBase: opBase{name: "fd"}, fwd: op, level: l, rows: make([][]int32, len(shapes))}
			g, err := bwd.Do(vals[0], dy)
			if err != nil {
				t.Fatal(err)
			}
			an := g.Data().([]float32)
			f := vals[1+l].Data().([]float32)
			for j := range f {
				if an[j] == 0 && j%7 != 0 {
					continue
				}
				const d = 0.25
				orig := f[j]
				f[j] = orig + d
				lp := loss()
				f[j] = orig - d
				lm := loss()
				f[j] = orig
				fd := (lp - lm) / (2 * d)
				if math.Abs(fd-float64(an[j])) > 1e-4*(1+math.Abs(fd)) {
					t.Errorf("config %d level %d element %d: analytic %.6f, finite difference %.6f", ci, l, j, an[j], fd)
				}
				checked++
			}
		}
		if checked < 100 {
			t.Errorf("config %d: only %d elements checked", ci, checked)
		}
	}
}

func TestMultiScaleRoIAlignPadding(t *testing.T) {
	b := NewBuilder(NewRegistry())
	rois := []float32{0, 2, 3, 20, 25, -1, 2, 3, 20, 25, 1, 0, 0, 40, 30}
	var feats []*G.Node
	for l, s := range [][]int{{2, 3, 16, 16}, {2, 3, 8, 8}} {
		n := b.InputRequiringGrad(fmt.Sprintf("f%d", l), s...)
		v := tensor.New(tensor.WithShape(s...), tensor.WithBacking(detrand.Symmetric(fmt.Sprintf("pad%d", l), s[0]*s[1]*s[2]*s[3], 1)))
		if err := G.Let(n, v); err != nil {
			t.Fatal(err)
		}
		feats = append(feats, n)
	}
	cfg := TorchvisionRoIAlign()
	out := b.MultiScaleRoIAlign(msConstRoIs(b, rois), feats, 64, 64, cfg)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	op := out.Op().(*msRoIAlignOp)
	in := []G.Value{msConstRoIs(b, rois).Value(), feats[0].Value(), feats[1].Value()}
	// a stale, non-zero preallocated output must be overwritten everywhere
	pre := tensor.New(tensor.WithShape(3, 3, 7, 7), tensor.Of(tensor.Float32))
	for i := range pre.Data().([]float32) {
		pre.Data().([]float32)[i] = 9
	}
	v, err := op.UsePreallocDo(pre, in...)
	if err != nil {
		t.Fatal(err)
	}
	y := v.Data().([]float32)
	per := 3 * 49
	for i := per; i < 2*per; i++ {
		if y[i] != 0 {
			t.Fatalf("padding row pooled %g at %d, want 0", y[i], i-per)
		}
	}
	for _, i := range []int{0, 2 * per} {
		if y[i] == 0 || y[i] == 9 {
			t.Fatalf("real row element %d is %g", i, y[i])
		}
	}
	// gradient: only the padding row's output gradient is non-zero
	dy := tensor.New(tensor.WithShape(3, 3, 7, 7), tensor.Of(tensor.Float32))
	for i := per; i < 2*per; i++ {
		dy.Data().([]float32)[i] = 1
	}
	for l := 0; l < 2; l++ {
		bwd := &msRoIAlignBwdOp{opBase: opBase{name: "t"}, fwd: op, level: l, rows: make([][]int32, 2)}
		g, err := bwd.UsePreallocDo(nil, in[0], dy)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range g.Data().([]float32) {
			if v != 0 {
				t.Fatalf("level %d: the padding row produced a gradient", l)
			}
		}
	}
}

func TestMultiScaleRoIAlignLevelOnlySomeNeedGrad(t *testing.T) {
	b := NewBuilder(NewRegistry())
	f0 := b.Input("f0", 1, 2, 16, 16) // frozen level: no backward op
	f1 := b.InputRequiringGrad("f1", 1, 2, 8, 8)
	out := b.MultiScaleRoIAlign(msConstRoIs(b, []float32{0, 0, 0, 10, 10}), []*G.Node{f0, f1}, 64, 64, TorchvisionRoIAlign())
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	op := out.Op().(*msRoIAlignOp)
	if d := op.DiffWRT(3); d[0] || d[1] || !d[2] {
		t.Fatalf("DiffWRT %v, want [false false true]", d)
	}
	if !b.NeedsGrad(out) {
		t.Fatal("output should need a gradient")
	}
	b2 := NewBuilder(NewRegistry())
	r := b2.InputRequiringGrad("rois", 1, 5) // differentiable rois alone do not make the output need one
	out2 := b2.MultiScaleRoIAlign(r, []*G.Node{b2.Input("f", 1, 2, 16, 16)}, 64, 64, TorchvisionRoIAlign())
	if b2.Err() != nil || b2.NeedsGrad(out2) {
		t.Fatalf("err %v, needs grad %v", b2.Err(), b2.NeedsGrad(out2))
	}
}

func TestMultiScaleRoIAlignErrors(t *testing.T) {
	cases := []struct {
		name  string
		rois  []int
		feats [][]int
		h     int
		cfg   RoIAlignConfig
		want  string
	}{
		{"rois shape", []int{3, 4}, [][]int{{1, 2, 16, 16}}, 64, TorchvisionRoIAlign(), "rois shape"},
		{"channels", []int{3, 5}, [][]int{{1, 2, 16, 16}, {1, 3, 8, 8}}, 64, TorchvisionRoIAlign(), "channels differ"},
		{"gap", []int{3, 5}, [][]int{{1, 2, 16, 16}, {1, 2, 4, 4}}, 64, TorchvisionRoIAlign(), "consecutive"},
		{"size", []int{3, 5}, [][]int{{1, 2, 16, 16}}, 64, RoIAlignConfig{}, "output size"},
		{"nchw", []int{3, 5}, [][]int{{2, 16, 16}}, 64, TorchvisionRoIAlign(), "NCHW"},
	}
	for _, c := range cases {
		b := NewBuilder(NewRegistry())
		var fs []*G.Node
		for _, s := range c.feats {
			fs = append(fs, b.Input("f", s...))
		}
		if out := b.MultiScaleRoIAlign(b.Input("r", c.rois...), fs, c.h, c.h, c.cfg); out != nil || b.Err() == nil || !strings.Contains(b.Err().Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, b.Err(), c.want)
		}
	}
	// a bad batch index is a run-time error, not a panic
	b := NewBuilder(NewRegistry())
	f := b.Input("f", 1, 2, 16, 16)
	out := b.MultiScaleRoIAlign(msConstRoIs(b, []float32{3, 0, 0, 10, 10}), []*G.Node{f}, 64, 64, TorchvisionRoIAlign())
	_, err := out.Op().(*msRoIAlignOp).Do(msConstRoIs(b, []float32{3, 0, 0, 10, 10}).Value(), tensor.New(tensor.WithShape(1, 2, 16, 16), tensor.Of(tensor.Float32)))
	if err == nil || !strings.Contains(err.Error(), "batch index 3") {
		t.Errorf("error %v, want one about batch index 3", err)
	}
}

// benchRoIs mirrors bench_rois of scripts/golden_roialign.py: k regions in
// two images of side img, sides 16..416 px.
func benchRoIs(k int, img float64) []float32 {
	u := detrand.Uniform("roialign/bench", 4*k)
	out := make([]float32, 0, 5*k)
	for i := 0; i < k; i++ {
		bw := 16 + 400*u[4*i+2]
		bh := 16 + 400*u[4*i+3]
		x1 := u[4*i] * (img - bw)
		y1 := u[4*i+1] * (img - bh)
		out = append(out, float32(i%2), float32(x1), float32(y1), float32(x1+bw), float32(y1+bh))
	}
	return out
}

// BenchmarkMultiScaleRoIAlign times one forward and the four levels'
// backward of torchvision's box pooler configuration (7x7, sampling 2) on
// 1024 regions, 256 channels, P2..P5 of a batch of two 512x512 images: the
// ops exactly as a compiled graph runs them.
func BenchmarkMultiScaleRoIAlign(b *testing.B) {
	const k, c, img = 1024, 256, 512
	bl := NewBuilder(NewRegistry())
	rois := benchRoIs(k, img)
	rn := msConstRoIs(bl, rois)
	var feats []*G.Node
	vals := []G.Value{rn.Value()}
	for l := 2; l <= 5; l++ {
		s := img >> l
		n := bl.InputRequiringGrad(fmt.Sprintf("p%d", l), 2, c, s, s)
		feats = append(feats, n)
		vals = append(vals, tensor.New(tensor.WithShape(2, c, s, s), tensor.WithBacking(detrand.Symmetric(fmt.Sprintf("bench/p%d", l), 2*c*s*s, 1))))
	}
	out := bl.MultiScaleRoIAlign(rn, feats, img, img, TorchvisionRoIAlign())
	if err := bl.Err(); err != nil {
		b.Fatal(err)
	}
	op := out.Op().(*msRoIAlignOp)
	var bwds []*msRoIAlignBwdOp
	for l := range feats {
		bwds = append(bwds, &msRoIAlignBwdOp{opBase: opBase{name: "bench"}, fwd: op, level: l, rows: make([][]int32, len(feats))})
	}
	dy := tensor.New(tensor.WithShape(k, c, 7, 7), tensor.WithBacking(detrand.Symmetric("bench/dy", k*c*49, 1)))
	var y G.Value
	dxs := make([]G.Value, len(feats))
	run := func() {
		var err error
		if y, err = op.UsePreallocDo(y, vals...); err != nil {
			b.Fatal(err)
		}
		for l, bw := range bwds {
			if dxs[l], err = bw.UsePreallocDo(dxs[l], vals[0], dy); err != nil {
				b.Fatal(err)
			}
		}
	}
	run() // outputs allocated once, as in a machine's first run
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
}

func TestMultiScaleRoIAlignSteadyStateAllocs(t *testing.T) {
	const k, c, img = 64, 8, 128
	bl := NewBuilder(NewRegistry())
	rn := msConstRoIs(bl, benchRoIs(k, img))
	var feats []*G.Node
	vals := []G.Value{rn.Value()}
	for l := 2; l <= 5; l++ {
		s := img >> l
		feats = append(feats, bl.InputRequiringGrad(fmt.Sprintf("p%d", l), 2, c, s, s))
		vals = append(vals, tensor.New(tensor.WithShape(2, c, s, s), tensor.WithBacking(detrand.Symmetric(fmt.Sprintf("alloc/p%d", l), 2*c*s*s, 1))))
	}
	out := bl.MultiScaleRoIAlign(rn, feats, img, img, TorchvisionRoIAlign())
	if err := bl.Err(); err != nil {
		t.Fatal(err)
	}
	op := out.Op().(*msRoIAlignOp)
	var bwds []*msRoIAlignBwdOp
	for l := range feats {
		bwds = append(bwds, &msRoIAlignBwdOp{opBase: opBase{name: "alloc"}, fwd: op, level: l, rows: make([][]int32, len(feats))})
	}
	dy := tensor.New(tensor.WithShape(k, c, 7, 7), tensor.WithBacking(detrand.Symmetric("alloc/dy", k*c*49, 1)))
	var y G.Value
	dxs := make([]G.Value, len(feats))
	run := func() {
		var err error
		if y, err = op.UsePreallocDo(y, vals...); err != nil {
			t.Fatal(err)
		}
		for l, bw := range bwds {
			if dxs[l], err = bw.UsePreallocDo(dxs[l], vals[0], dy); err != nil {
				t.Fatal(err)
			}
		}
	}
	run()
	y0 := y
	// only small per-call objects are allocated (the kernels' goroutines,
	// Gorgonia's shape clones), never per-region or per-channel scratch
	if a := testing.AllocsPerRun(5, run); a > 80 {
		t.Errorf("%.0f allocations per forward+backward in steady state", a)
	}
	if y != y0 {
		t.Error("the output tensor was not reused")
	}
}

// TestMultiScaleRoIAlignSingleLevel: with one level torchvision skips the
// level mapping and pools every region there with the inferred scale.
func TestMultiScaleRoIAlignSingleLevel(t *testing.T) {
	rois := []float32{0, 2, 3, 20, 25, 1, 30, 30, 10, 10, 0, -5, -5, 200, 150}
	b := NewBuilder(NewRegistry())
	f := b.Input("f", 2, 3, 16, 24)
	out := b.MultiScaleRoIAlign(msConstRoIs(b, rois), []*G.Node{f}, 64, 96, RoIAlignConfig{OutputSize: 4, SamplingRatio: 0, Aligned: true})
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	fv := detrand.Symmetric("single", 2*3*16*24, 1)
	y, err := out.Op().(*msRoIAlignOp).Do(msConstRoIs(b, rois).Value(), tensor.New(tensor.WithShape(2, 3, 16, 24), tensor.WithBacking(fv)))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, 3*3*16)
	p := kernels.RoIAlignParams{PooledH: 4, PooledW: 4, SpatialScale: 0.25, SamplingRatio: 0, Aligned: true}
	if err := kernels.RoIAlignForward(p, fv, 2, 3, 16, 24, rois, want); err != nil {
		t.Fatal(err)
	}
	for i, v := range y.Data().([]float32) {
		if v != want[i] {
			t.Fatalf("element %d: %g, RoIAlign at scale 1/4 gives %g", i, v, want[i])
		}
	}
}
