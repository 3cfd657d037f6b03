package layers

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
)

func TestLinearGradients(t *testing.T) {
	for _, relu := range []bool{false, true} {
		reg := NewRegistry()
		l := NewLinear(reg, "fc", 2*3*3, 5)
		checkGrads(t, reg, [][]int{{4, 2, 3, 3}}, func(b *Builder, ins []*G.Node) *G.Node {
			return b.Linear(ins[0], l, relu)
		}, 2e-2)
		// a rank-2 input, feeding a second layer
		reg = NewRegistry()
		l1, l2 := NewLinear(reg, "a", 6, 7), NewLinear(reg, "b", 7, 3)
		checkGrads(t, reg, [][]int{{3, 6}}, func(b *Builder, ins []*G.Node) *G.Node {
			return b.Linear(b.Linear(ins[0], l1, relu), l2, false)
		}, 2e-2)
	}
}

// TestLinearParityTorch: F.linear (+ ReLU) on a flattened [K, C, 7, 7]
// input, forward and the gradients of sum(y * R), against PyTorch.
func TestLinearParityTorch(t *testing.T) {
	f := lossGolden(t)
	const k, c, o = 6, 8, 16
	for _, relu := range []bool{false, true} {
		tag := "linear"
		if relu {
			tag = "linear_relu"
		}
		reg := NewRegistry()
		l := NewLinear(reg, tag, c*49, o)
		copy(l.Weight.Data(), detrand.Param(tag+".weight", l.Weight.Shape()))
		copy(l.Bias.Data(), detrand.Param(tag+".bias", l.Bias.Shape()))
		b := NewBuilder(reg)
		x := b.InputRequiringGrad("x", k, c, 7, 7)
		if err := G.Let(x, tensor.New(tensor.WithShape(k, c, 7, 7), tensor.WithBacking(detVals(tag+"/x", []int{k, c, 7, 7}, 1)))); err != nil {
			t.Fatal(err)
		}
		y := b.Linear(x, l, relu)
		ky := b.Keep(y)
		loss := b.Dot(y, detrand.Symmetric(tag+"/R", k*o, 1))
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		grads, err := G.Grad(loss, x, b.Param(l.Weight), b.Param(l.Bias))
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMachine(b.G)
		if err != nil {
			t.Fatal(err)
		}
		for run := 0; run < 2; run++ { // the second run reuses every buffer
			if err := m.Run(); err != nil {
				t.Fatal(err)
			}
			compareGolden(t, f, tag+"/y", ky.Data(), parityRel)
			compareGolden(t, f, tag+"/dx", grads[0].Value().Data().([]float32), parityRel)
			compareGolden(t, f, tag+"/dw", grads[1].Value().Data().([]float32), parityRel)
			compareGolden(t, f, tag+"/db", grads[2].Value().Data().([]float32), parityRel)
		}
		m.Close()
	}
}

// TestLinearGradientsOnlyWhereNeeded: a frozen weight gets no dW op, an
// input without gradient no dx op, and a layer with nothing trainable
// below or inside it no backward op at all.
func TestLinearGradientsOnlyWhereNeeded(t *testing.T) {
	ops := func(frozenW, frozenB, inputGrad bool) string {
		reg := NewRegistry()
		l := NewLinear(reg, "fc", 4, 3)
		l.Weight.Frozen, l.Bias.Frozen = frozenW, frozenB
		b := NewBuilder(reg)
		var x *G.Node
		if inputGrad {
			x = b.InputRequiringGrad("x", 2, 4)
		} else {
			x = b.Input("x", 2, 4)
		}
		y := b.Linear(x, l, true)
		if got := b.NeedsGrad(y); got != (inputGrad || !frozenW || !frozenB) {
			t.Errorf("NeedsGrad(y) = %v with frozenW=%v frozenB=%v inputGrad=%v", got, frozenW, frozenB, inputGrad)
		}
		loss := b.Dot(y, make([]float32, 6))
		var wrt []*G.Node
		if inputGrad {
			wrt = append(wrt, x)
		}
		if !frozenW {
			wrt = append(wrt, b.Param(l.Weight))
		}
		if !frozenB {
			wrt = append(wrt, b.Param(l.Bias))
		}
		if len(wrt) > 0 {
			if _, err := G.Grad(loss, wrt...); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		for _, n := range b.G.AllNodes() {
			if s := n.Op(); s != nil && strings.HasPrefix(s.String(), "linear(fc).") {
				names = append(names, strings.TrimPrefix(s.String(), "linear(fc)."))
			}
		}
		return strings.Join(names, ",")
	}
	has := func(s, op string) bool { return strings.Contains(","+s+",", ","+op+",") }
	for _, c := range []struct {
		frozenW, frozenB, inputGrad bool
		want                        []string
	}{
		{false, false, true, []string{"dmask", "dx", "dw", "db"}},
		{true, false, false, []string{"dmask", "db"}},
		{false, true, false, []string{"dmask", "dw"}},
		{true, true, true, []string{"dmask", "dx"}},
	} {
		got := ops(c.frozenW, c.frozenB, c.inputGrad)
		for _, op := range []string{"dmask", "dx", "dw", "db"} {
			want := false
			for _, w := range c.want {
				want = want || w == op
			}
			if has(got, op) != want {
				t.Errorf("frozenW=%v frozenB=%v inputGrad=%v: backward ops %q, want %v", c.frozenW, c.frozenB, c.inputGrad, got, c.want)
				break
			}
		}
	}
}

func TestLinearRejectsBadShapes(t *testing.T) {
	reg := NewRegistry()
	l := NewLinear(reg, "fc", 12, 3)
	b := NewBuilder(reg)
	if b.Linear(b.Input("x", 2, 5), l, false); b.Err() == nil || !strings.Contains(b.Err().Error(), "fc") {
		t.Errorf("12-feature layer on [2 5]: error %v", b.Err())
	}
	b = NewBuilder(reg)
	if b.Linear(b.Input("x", 12), l, false); b.Err() == nil {
		t.Error("rank-1 input accepted")
	}
}

// TestLinearInit: InitDefault draws U(-1/sqrt(in), 1/sqrt(in)) for both
// weight and bias (torch's nn.Linear), InitNormal N(0, std^2) and bias 0.
func TestLinearInit(t *testing.T) {
	reg := NewRegistry()
	l := NewLinear(reg, "roi_heads.box_head.fc6", 400, 300)
	if reg.Get("roi_heads.box_head.fc6.weight") == nil || reg.Get("roi_heads.box_head.fc6.bias") == nil {
		t.Fatal("torchvision parameter names not registered")
	}
	l.InitDefault(rand.New(rand.NewSource(1)))
	bound := 1 / math.Sqrt(400)
	for _, p := range []*Param{l.Weight, l.Bias} {
		var mx, ss float64
		for _, v := range p.Data() {
			mx = math.Max(mx, math.Abs(float64(v)))
			ss += float64(v) * float64(v)
		}
		std := math.Sqrt(ss / float64(len(p.Data())))
		// uniform on [-bound, bound]: max close to the bound, std bound/sqrt(3)
		if mx > bound || mx < 0.95*bound || math.Abs(std-bound/math.Sqrt(3)) > 0.1*bound/math.Sqrt(3) {
			t.Errorf("%s: max %.4g std %.4g, want U(-%.4g, %.4g)", p.Name, mx, std, bound, bound)
		}
	}
	l.InitNormal(0.01, rand.New(rand.NewSource(2)))
	var ss float64
	for _, v := range l.Weight.Data() {
		ss += float64(v) * float64(v)
	}
	if std := math.Sqrt(ss / float64(len(l.Weight.Data()))); math.Abs(std-0.01) > 0.0005 {
		t.Errorf("InitNormal(0.01): std %.5g", std)
	}
	for _, v := range l.Bias.Data() {
		if v != 0 {
			t.Fatal("InitNormal: bias not zero")
		}
	}
}

// TestLinearAndLossesSteadyStateAllocations: a small box head with all
// losses (forward + backward), run several times with layers.Machine:
// after the first runs an iteration allocates almost nothing.
func TestLinearAndLossesSteadyStateAllocations(t *testing.T) {
	reg := NewRegistry()
	rng := rand.New(rand.NewSource(9))
	fc6, fc7 := NewLinear(reg, "fc6", 4*7*7, 32), NewLinear(reg, "fc7", 32, 32)
	cls, box := NewLinear(reg, "cls_score", 32, 3), NewLinear(reg, "bbox_pred", 32, 12)
	for _, l := range []*Linear{fc6, fc7} {
		l.InitDefault(rng)
	}
	cls.InitNormal(0.01, rng)
	box.InitNormal(0.001, rng)
	b := NewBuilder(reg)
	const k = 16
	x := b.InputRequiringGrad("roi_features", k, 4, 7, 7)
	obj := b.InputRequiringGrad("objectness", 2, 3, 5, 5)
	G.Let(x, tensor.New(tensor.WithShape(k, 4, 7, 7), tensor.WithBacking(randVals(rng, k*4*49, 1))))
	G.Let(obj, tensor.New(tensor.WithShape(2, 3, 5, 5), tensor.WithBacking(randVals(rng, 150, 1))))
	h := b.Linear(b.Linear(x, fc6, true), fc7, true)
	ce := &CETargets{Label: make([]int32, k), Norm: k}
	for i := range ce.Label {
		ce.Label[i] = int32(i % 3)
	}
	ce.Label[k-1] = -1
	bt := &BoxTargets{Base: []int32{4, 12 + 8, 24 + 4}, CommonStride: 1, Target: [][4]float32{{1, 2, 3, 4}, {0, 0, 0, 0}, {-1, 0.01, 0.5, 0}}, Norm: k}
	bce := &BCETargets{Index: []int32{0, 7, 99, 149}, Target: []float32{1, 0, 0, 1}, Norm: 4}
	loss := b.WeightedSum([]float32{1, 1, 2},
		b.SoftmaxCE(ce, b.Linear(h, cls, false)),
		b.BoxRegression(bt, 1.0/9, b.Linear(h, box, false)),
		b.SigmoidBCE(bce, obj))
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	nodes, _ := b.TrainableNodes()
	if _, err := G.Grad(loss, append(nodes, x, obj)...); err != nil {
		t.Fatal(err)
	}
	m, err := NewMachine(b.G)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	run := func() {
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
	}
	run()
	run()
	first := mustLoss(t, loss)
	if first <= 0 || math.IsNaN(first) {
		t.Fatalf("loss %v", first)
	}
	// Each iteration is measured on its own, with the collector off, and
	// the median is checked: kernels.Sgemm keeps its packing buffers
	// (megabytes) in a sync.Pool, which a garbage collection empties and
	// whose per-P slots another core's worker cannot take, so an
	// occasional iteration refills one; that is the kernels' one-off, not
	// a per-iteration cost of these ops.
	const iters = 9
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	bytes := make([]float64, iters)
	var mallocs float64
	var before, after runtime.MemStats
	for i := range bytes {
		runtime.ReadMemStats(&before)
		run()
		runtime.ReadMemStats(&after)
		bytes[i] = float64(after.TotalAlloc - before.TotalAlloc)
		mallocs += float64(after.Mallocs-before.Mallocs) / iters
	}
	sort.Float64s(bytes)
	med := bytes[iters/2]
	// The graph's tensors take about 150 KiB; what is left per iteration
	// is Gorgonia's per-instruction bookkeeping and 24-byte slice headers
	// from tensor.Dense.Data (reflection).
	t.Logf("steady state: median %.0f bytes (max %.0f) in %.1f allocations per iteration (heap %d KiB)", med, bytes[iters-1], mallocs, before.HeapAlloc>>10)
	if med > 32<<10 {
		t.Errorf("a steady-state iteration allocates %.0f bytes (%.1f allocations), want ~0", med, mallocs)
	}
	if got := mustLoss(t, loss); got != first {
		t.Errorf("loss changed between identical runs: %v then %v", first, got)
	}
}

// BenchmarkLinearFC6: torchvision's fc6 at training size, 1024 RoIs of
// 256x7x7 -> 1024 with ReLU, forward and backward (dx, dW, db).
func BenchmarkLinearFC6(bm *testing.B) {
	const k, in, out = 1024, 256 * 7 * 7, 1024
	reg := NewRegistry()
	l := NewLinear(reg, "roi_heads.box_head.fc6", in, out)
	l.InitDefault(rand.New(rand.NewSource(1)))
	b := NewBuilder(reg)
	x := b.InputRequiringGrad("x", k, 256, 7, 7)
	G.Let(x, tensor.New(tensor.WithShape(k, 256, 7, 7), tensor.WithBacking(detrand.Symmetric("fc6/x", k*in, 1))))
	y := b.Linear(x, l, true)
	loss := b.Dot(y, detrand.Symmetric("fc6/R", k*out, 1))
	if _, err := G.Grad(loss, x, b.Param(l.Weight), b.Param(l.Bias)); err != nil {
		bm.Fatal(err)
	}
	m, err := NewMachine(b.G)
	if err != nil {
		bm.Fatal(err)
	}
	defer m.Close()
	if err := m.Run(); err != nil {
		bm.Fatal(err)
	}
	bm.ResetTimer()
	for i := 0; i < bm.N; i++ {
		if err := m.Run(); err != nil {
			bm.Fatal(err)
		}
	}
	flops := 3 * 2 * float64(k) * in * out
	bm.ReportMetric(flops*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
}
