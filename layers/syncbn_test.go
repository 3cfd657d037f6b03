package layers

import (
	"math"
	"sync"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/dist"
	"github.com/skd-go/skd/internal/detrand"
)

// bnRun builds y = relu(bn(x) + res) on rows [lo, hi) of a fixed batch,
// runs forward and backward of sum(y * R) twice, and returns y, dx, dres,
// dgamma, dbeta and the running statistics. With arena the graph is
// planned into a (poisoned) arena, as the detector's programs are.
func bnRun(t *testing.T, lo, hi int, sync StatReducer, arena bool) [][]float32 {
	const n, c, h, w = 4, 5, 6, 7
	per := c * h * w
	shape := []int{hi - lo, c, h, w}
	reg := NewRegistry()
	bn := NewFrozenBN(reg, "bn", c, 1e-5)
	bn.UseBatchStats(0.1)
	bn.Sync = sync
	copy(bn.Weight.Data(), detrand.Affine("w", c, 0.5, 1.0))
	copy(bn.Bias.Data(), detrand.Symmetric("b", c, 0.5))
	b := NewBuilder(reg)
	b.Training = true
	if arena {
		a := NewArena()
		a.Poison = true
		b.UseArena(a)
	}
	x := b.InputRequiringGrad("x", shape...)
	xs := detrand.Affine("x", n*per, 1.0, 4.0)[lo*per : hi*per]
	if err := G.Let(x, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), xs...)))); err != nil {
		t.Fatal(err)
	}
	res := b.InputRequiringGrad("res", shape...)
	rs := detrand.Symmetric("res", n*per, 1)[lo*per : hi*per]
	if err := G.Let(res, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), rs...)))); err != nil {
		t.Fatal(err)
	}
	y := b.BatchNorm(x, bn, res, true)
	ky := b.Keep(y)
	loss := b.Dot(y, detrand.Symmetric("R", n*per, 1)[lo*per:hi*per])
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(loss, x, res, b.Param(bn.Weight), b.Param(bn.Bias))
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Compile()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, planned := m.Planned(); planned != arena {
		t.Fatalf("planned %v, want %v", planned, arena)
	}
	for run := 0; run < 2; run++ {
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
	}
	out := [][]float32{append([]float32(nil), ky.Data()...)}
	for _, g := range grads {
		out = append(out, append([]float32(nil), g.Value().Data().([]float32)...))
	}
	return append(out, append([]float32(nil), bn.Mean.Data()...), append([]float32(nil), bn.Var.Data()...))
}

// TestSyncBNEqualsOneProcess: 2 replicas with 2 images each, statistics
// reduced, give the one-process BatchNorm over 4 images: the same outputs
// and input gradients (row slices), running statistics, and parameter
// gradients that sum to the one-process ones, with and without the memory
// arena. Without Sync they differ.
func TestSyncBNEqualsOneProcess(t *testing.T) {
	for _, arena := range []bool{false, true} {
		t.Run(map[bool]string{false: "unplanned", true: "arena"}[arena], func(t *testing.T) { syncBNEqualsOneProcess(t, arena) })
	}
}

func syncBNEqualsOneProcess(t *testing.T, arena bool) {
	one := bnRun(t, 0, 4, nil, false)
	ws := dist.Local(2)
	parts := make([][][]float32, 2)
	var wg sync.WaitGroup
	for r := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[r] = bnRun(t, 2*r, 2*r+2, ws[r], arena)
		}()
	}
	wg.Wait()
	if parts[0] == nil || parts[1] == nil {
		t.FailNow()
	}
	near := func(what string, a, b []float32) {
		t.Helper()
		if len(a) != len(b) {
			t.Fatalf("%s: %d values, want %d", what, len(a), len(b))
		}
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > 1e-5*(1+math.Abs(float64(b[i]))) {
				t.Fatalf("%s[%d] = %v, one process %v", what, i, a[i], b[i])
			}
		}
	}
	names := []string{"y", "dx", "dres"}
	for k, name := range names {
		half := len(one[k]) / 2
		for r := 0; r < 2; r++ {
			near(name, parts[r][k], one[k][r*half:(r+1)*half])
		}
	}
	for k, name := range []string{"dgamma", "dbeta"} {
		sum := append([]float32(nil), parts[0][3+k]...)
		for i := range sum {
			sum[i] += parts[1][3+k][i]
		}
		near(name+" summed over replicas", sum, one[3+k])
	}
	for r := 0; r < 2; r++ {
		near("running_mean", parts[r][5], one[5])
		near("running_var", parts[r][6], one[6])
	}
	// per-replica statistics (plain BN on each half) differ: the test can fail
	alone := bnRun(t, 0, 2, nil, arena)
	if d := math.Abs(float64(alone[5][0] - one[5][0])); d < 1e-4 {
		t.Fatalf("per-replica running mean equals the global one (%v): the check is vacuous", d)
	}
}
