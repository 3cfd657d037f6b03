package kd

import (
	"math"
	"math/rand"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/layers"
)

// total64 runs the rig and returns the float64 weighted total.
func (r *distRig) total64(t testing.TB) float64 {
	t.Helper()
	r.run(t)
	_, tot := r.d.LastLevels()
	return tot
}

// checkRigFD compares the graph's gradients (student inputs, adapters,
// generators) with central differences of the float64 total, on up to 10
// elements of each tensor.
func checkRigFD(t *testing.T, r *distRig, eps, tol float64) {
	t.Helper()
	r.run(t)
	var an [][]float32
	for _, g := range r.grads {
		an = append(an, gradData(g))
	}
	var datas [][]float32
	for _, x := range r.xs {
		datas = append(datas, x.Data().([]float32))
	}
	for _, p := range r.params {
		datas = append(datas, p.Data())
	}
	// Errors are measured against the largest gradient of any tensor:
	// some gradients are exactly 0 (psi, PKD's normalisation and CWD's
	// softmax are shift-invariant per channel, so adapter biases get none)
	// and their finite differences are float32 rounding noise.
	var gmax float64
	for _, g := range an {
		for _, v := range g {
			gmax = math.Max(gmax, math.Abs(float64(v)))
		}
	}
	rng := rand.New(rand.NewSource(5))
	for i, d := range datas {
		idx := rng.Perm(len(d))
		if len(idx) > 10 {
			idx = idx[:10]
		}
		for _, j := range idx {
			orig := d[j]
			d[j] = float32(float64(orig) + eps)
			xp := float64(d[j])
			lp := r.total64(t)
			d[j] = float32(float64(orig) - eps)
			xm := float64(d[j])
			lm := r.total64(t)
			d[j] = orig
			fd := (lp - lm) / (xp - xm)
			if a := float64(an[i][j]); math.Abs(fd-a) > tol*(gmax+math.Abs(fd)) {
				t.Errorf("tensor %d elem %d: analytic %.7g, finite difference %.7g (max |grad| %.3g)", i, j, a, fd, gmax)
			}
		}
	}
}

// TestDistillerFiniteDifferences: every loss through the graph, with
// adapters (and MGD's generator), two levels of different sizes.
func TestDistillerFiniteDifferences(t *testing.T) {
	shapes := [][4]int{{2, 3, 8, 9}, {2, 3, 4, 5}}
	for _, loss := range []string{"ssim", "l1", "l2", "pkd", "cwd", "mgd"} {
		t.Run(loss, func(t *testing.T) {
			cfg := Config{Loss: loss, Adapter: true, Weight: 1.5}
			r := newDistRig(t, cfg, []int{3, 3}, []int{4, 4}, shapes, "fd/x", "fd/t", nil)
			if loss == "mgd" {
				// the same mask every run: the source replays 2*8*9 +
				// 2*4*5 draws
				r.d.MaskSource = &seqSource{u: detrand.Uniform("fd/mask", 2*8*9+2*4*5)}
			}
			eps := 1e-3
			if loss == "mgd" {
				// the generator's ReLU has pre-activations within 1e-3
				// of its kink: steps of 1e-2 and 1e-3 cross it (errors
				// shrink with the step), 1e-4 does not
				eps = 1e-4
			}
			checkRigFD(t, r, eps, 2e-3)
		})
	}
}

func TestDistillerLevelsSubsetAndWeight(t *testing.T) {
	shapes := [][4]int{{1, 2, 6, 6}, {1, 2, 3, 3}, {1, 2, 2, 2}}
	all := newDistRig(t, Config{Loss: "l2"}, []int{2, 2, 2}, []int{2, 2, 2}, shapes, "sub/x", "sub/t", nil)
	all.run(t)
	lv, tot := all.d.LastLevels()
	if len(lv) != 3 || math.Abs(tot-1*(lv[0]+lv[1]+lv[2])) > 1e-12 {
		t.Fatalf("levels %v total %v", lv, tot)
	}
	sub := newDistRig(t, Config{Loss: "l2", Levels: []int{2, 0}, Weight: 3}, []int{2, 2, 2}, []int{2, 2, 2}, shapes, "sub/x", "sub/t", nil)
	sub.run(t)
	lv2, tot2 := sub.d.LastLevels()
	if len(lv2) != 2 || lv2[0] != lv[2] || lv2[1] != lv[0] || math.Abs(tot2-3*(lv[0]+lv[2])) > 1e-12 {
		t.Errorf("subset [2 0] weight 3: levels %v total %v; all levels %v", lv2, tot2, lv)
	}
	// the level left out gets no gradient node at all
	if sub.grads[1] != nil || sub.grads[0] == nil || sub.grads[2] == nil {
		t.Fatal("gradient nodes do not follow the distilled levels")
	}
	// the mean of l2 is the mean over the level
	x := all.xs[1].Data().([]float32)
	tt := all.teacher.Levels[1]
	var s float64
	for i := range x {
		d := float64(x[i]) - float64(tt[i])
		s += d * d
	}
	if want := s / float64(len(x)); math.Abs(lv[1]-want) > 1e-12 {
		t.Errorf("level 1 l2 %v, direct %v", lv[1], want)
	}
}

func TestDistillerDefaultsAndErrors(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Loss != "ssim" || c.Weight != 2 || c.Window != 11 || c.Sigma != 1.5 || c.Normalize != "channel" || c.Terms != "full" || c.Padding != "same" {
		t.Errorf("defaults %+v", c)
	}
	for loss, w := range map[string]float64{"pkd": 6, "cwd": 10, "mgd": 2e-5, "l1": 1, "l2": 1} {
		if got := (Config{Loss: loss}).WithDefaults().Weight; got != w {
			t.Errorf("%s default weight %v, want %v", loss, got, w)
		}
	}
	rng := rand.New(rand.NewSource(1))
	reg := layers.NewRegistry()
	bad := []struct {
		cfg    Config
		cs, ct []int
		want   string
	}{
		{Config{}, []int{3}, []int{4}, "set Adapter"},
		{Config{Loss: "fgd"}, []int{3}, []int{3}, "loss \"fgd\""},
		{Config{Weight: -1}, []int{3}, []int{3}, "weight"},
		{Config{Levels: []int{1}}, []int{3}, []int{3}, "out of range"},
		{Config{Levels: []int{0, 0}}, []int{3}, []int{3}, "twice"},
		{Config{Tau: -2}, []int{3}, []int{3}, "tau"},
		{Config{MaskRatio: 1.5}, []int{3}, []int{3}, "mask ratio"},
		{Config{Window: 8}, []int{3}, []int{3}, "window 8"},
		{Config{}, []int{3, 3}, []int{3}, "levels"},
	}
	for _, c := range bad {
		if _, err := NewDistiller(reg, c.cfg, c.cs, c.ct, rng); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.cfg, err, c.want)
		}
	}
	// adapter parameters are registered once, trainable, with torch names
	reg = layers.NewRegistry()
	if _, err := NewDistiller(reg, Config{Loss: "mgd", Adapter: true}, []int{3, 5}, []int{4, 4}, rng); err != nil {
		t.Fatal(err)
	}
	want := []string{"distill.adapter.0.bias", "distill.adapter.0.weight", "distill.adapter.1.bias", "distill.adapter.1.weight",
		"distill.mgd.generator.0.0.bias", "distill.mgd.generator.0.0.weight", "distill.mgd.generator.0.2.bias", "distill.mgd.generator.0.2.weight",
		"distill.mgd.generator.1.0.bias", "distill.mgd.generator.1.0.weight", "distill.mgd.generator.1.2.bias", "distill.mgd.generator.1.2.weight"}
	if got := strings.Join(reg.Names(), " "); got != strings.Join(want, " ") {
		t.Errorf("registered %v", reg.Names())
	}
	if s := reg.Get("distill.adapter.1.weight").Shape(); len(s) != 4 || s[0] != 4 || s[1] != 5 || s[2] != 1 {
		t.Errorf("adapter 1 weight shape %v", s)
	}
	if len(reg.Trainable()) != len(want) {
		t.Errorf("%d trainable of %d", len(reg.Trainable()), len(want))
	}
}

// TestDistillerRunErrors: teacher data that does not fit the student fails
// the run with an error naming the level and the problem.
func TestDistillerRunErrors(t *testing.T) {
	shapes := [][4]int{{1, 2, 6, 7}}
	cases := []struct {
		edit func(tc *Teacher)
		want string
	}{
		{func(tc *Teacher) { tc.Shapes[0] = [4]int{1, 3, 6, 7}; tc.Levels[0] = make([]float32, 126) }, "enable the adapter"},
		{func(tc *Teacher) { tc.Shapes[0] = [4]int{1, 2, 5, 7}; tc.Levels[0] = make([]float32, 70) }, "spatial sizes must match"},
		{func(tc *Teacher) { tc.Shapes[0] = [4]int{2, 2, 6, 7} }, "batch"},
		{func(tc *Teacher) { tc.Levels[0] = tc.Levels[0][:10] }, "has 10 values"},
		{func(tc *Teacher) { tc.Levels, tc.Shapes = nil, nil }, "level 0 is missing"},
	}
	for _, c := range cases {
		r := newDistRig(t, Config{}, []int{2}, []int{2}, shapes, "err/x", "err/t", nil)
		c.edit(r.teacher)
		err := r.m.Run()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "kd.ssim.0") {
			t.Errorf("run error %v, want one naming kd.ssim.0 and %q", err, c.want)
		}
	}
	// build-time checks
	reg := layers.NewRegistry()
	d, _ := NewDistiller(reg, Config{}, []int{2}, []int{2}, rand.New(rand.NewSource(1)))
	b := layers.NewBuilder(reg)
	if _, _, err := d.Build(b, []*G.Node{b.Input("x", 1, 3, 4, 4)}, &Teacher{}); err == nil || !strings.Contains(err.Error(), "3 channels") {
		t.Errorf("student channel mismatch: %v", err)
	}
	if _, _, err := d.Build(b, []*G.Node{b.Input("y", 2, 4, 4)}, &Teacher{}); err == nil || !strings.Contains(err.Error(), "NCHW") {
		t.Errorf("3-D student: %v", err)
	}
	if _, _, err := d.Build(b, []*G.Node{b.Input("z", 1, 2, 4, 4)}, nil); err == nil {
		t.Error("nil teacher accepted")
	}
}

// TestDistillerFrozenStudent: a student map that needs no gradient gets
// no backward op, and the loss still runs.
func TestDistillerFrozenStudent(t *testing.T) {
	reg := layers.NewRegistry()
	d, _ := NewDistiller(reg, Config{}, []int{2}, []int{2}, rand.New(rand.NewSource(1)))
	b := layers.NewBuilder(reg)
	x := b.Input("x", 1, 2, 6, 6)
	G.Let(x, tensor.New(tensor.WithShape(1, 2, 6, 6), tensor.WithBacking(detrand.Symmetric("frozen/x", 72, 1))))
	tc := &Teacher{Levels: [][]float32{detrand.Symmetric("frozen/t", 72, 1)}, Shapes: [][4]int{{1, 2, 6, 6}}}
	loss, per, err := d.Build(b, []*G.Node{x}, tc)
	if err != nil {
		t.Fatal(err)
	}
	if b.NeedsGrad(loss) {
		t.Error("loss of a frozen student needs a gradient")
	}
	m, err := layers.NewMachine(b.G)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Value(per[0]); !(v > 0) || d.ops[per[0]].grad != nil {
		t.Errorf("value %v, gradient buffer allocated: %v", v, d.ops[per[0]].grad != nil)
	}
}

// TestDistillerSteadyState: repeated runs of a compiled graph (SSIM with
// adapters, two levels) allocate next to nothing and give identical
// results.
func TestDistillerSteadyState(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, loss := range []string{"ssim", "pkd", "mgd"} {
		t.Run(loss, func(t *testing.T) {
			r := newDistRig(t, Config{Loss: loss, Adapter: true}, []int{8, 8}, []int{8, 8}, [][4]int{{2, 8, 24, 32}, {2, 8, 12, 16}}, "ss/x", "ss/t", nil)
			if loss == "mgd" {
				r.d.MaskSource = &seqSource{u: detrand.Uniform("ss/mask", 2*24*32+2*12*16)}
			}
			r.run(t)
			first := r.total64(t)
			g0 := gradData(r.grads[0])
			const iters = 7
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			bytes := make([]float64, iters)
			var before, after runtime.MemStats
			for i := range bytes {
				runtime.ReadMemStats(&before)
				r.run(t)
				runtime.ReadMemStats(&after)
				bytes[i] = float64(after.TotalAlloc - before.TotalAlloc)
			}
			sort.Float64s(bytes)
			med := bytes[iters/2]
			t.Logf("%s steady state: median %.0f bytes per fwd+bwd (max %.0f); tensors of the graph ~%d KiB", loss, med, bytes[iters-1], 4*2*8*(24*32+12*16)*6>>10)
			if med > 32<<10 {
				t.Errorf("a steady-state run allocates %.0f bytes, want ~0", med)
			}
			if got := r.total64(t); got != first {
				t.Errorf("total changed between identical runs: %v then %v", first, got)
			}
			for i, v := range gradData(r.grads[0]) {
				if v != g0[i] {
					t.Fatalf("gradient changed between identical runs at %d", i)
				}
			}
		})
	}
}
