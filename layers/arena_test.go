package layers

import (
	"fmt"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// arenaNet builds x -> conv a (relu) -> conv b (relu) + residual from a ->
// loss; a is read by two ops, so G.Grad sums its gradient with a Gorgonia
// add.
func arenaNet(t *testing.T, arena *Arena) (*Builder, *G.Node, *Kept, []*G.Node, *G.Node) {
	t.Helper()
	reg := NewRegistry()
	c1 := NewConv2d(reg, "c1", 2, 4, 3, 1, 1, 1, true)
	c2 := NewConv2d(reg, "c2", 4, 4, 3, 1, 1, 1, false)
	for i, p := range []*Param{c1.Weight, c1.Bias, c2.Weight} {
		for j := range p.Data() {
			p.Data()[j] = float32((j*7+i*3)%11-5) * 0.05
		}
	}
	b := NewBuilder(reg)
	if arena != nil {
		b.UseArena(arena)
	}
	x := b.Input("x", 2, 2, 6, 6)
	img := tensor.New(tensor.WithShape(2, 2, 6, 6), tensor.Of(tensor.Float32))
	for i := range img.Data().([]float32) {
		img.Data().([]float32)[i] = float32(i%13) * 0.1
	}
	G.Let(x, img)
	a := b.Conv(x, c1, nil, nil, true)
	y := b.Conv(a, c2, nil, a, true)
	k := b.Keep(a)
	loss := b.Dot(y, func() []float32 {
		w := make([]float32, 2*4*6*6)
		for i := range w {
			w[i] = float32(i%5) - 2
		}
		return w
	}())
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	nodes, _ := b.TrainableNodes()
	grads, err := G.Grad(loss, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	return b, a, k, grads, loss
}

// Pitfall pin: G.Grad sums the gradients of a value read by several ops
// with Gorgonia's own elementwise add, which writes into an input or into
// its register's last tensor; and the add sits in gorgonia.Node's
// unexported op field. replaceGorgoniaAdds relies on both.
func TestGradAccumulationIsGorgoniaAdd(t *testing.T) {
	b, _, _, _, _ := arenaNet(t, nil)
	adds := 0
	for _, n := range b.G.AllNodes() {
		if n.Op() != nil && fmt.Sprintf("%T", n.Op()) == "gorgonia.elemBinOp" {
			adds++
		}
	}
	if adds == 0 {
		t.Fatal("Gorgonia no longer sums fan-out gradients with elemBinOp: revisit replaceGorgoniaAdds (layers/arena.go)")
	}
	n, err := replaceGorgoniaAdds(b.G)
	if err != nil {
		t.Fatalf("gorgonia.Node's op field changed: %v", err)
	}
	if n != adds {
		t.Fatalf("replaced %d of %d adds", n, adds)
	}
	for _, n := range b.G.AllNodes() {
		if fmt.Sprintf("%T", n.Op()) == "gorgonia.elemBinOp" {
			t.Fatalf("node %v still has %T", n, n.Op())
		}
	}
}

// A planned graph (arena poisoned with NaN before each run) gives the
// unplanned graph's loss, gradients and kept values exactly; Keep hands out
// the arena's value in place; the arena is smaller than all values.
func TestPlannedGraphMatchesUnplanned(t *testing.T) {
	run := func(arena *Arena) (float64, [][]float32, []float32, *Machine) {
		b, _, k, grads, loss := arenaNet(t, arena)
		m, err := b.Compile()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := m.Run(); err != nil {
				t.Fatal(err)
			}
		}
		var gs [][]float32
		for _, g := range grads {
			gs = append(gs, append([]float32(nil), g.Value().Data().([]float32)...))
		}
		l, _ := DotValue(loss)
		return l, gs, append([]float32(nil), k.Data()...), m
	}
	lu, gu, ku, mu := run(nil)
	if _, ok := mu.Planned(); ok {
		t.Fatal("a builder without arena gave a planned machine")
	}
	arena := NewArena()
	arena.Poison = true
	lp, gp, kp, mp := run(arena)
	st, ok := mp.Planned()
	if !ok {
		t.Fatal("not planned")
	}
	if lp != lu {
		t.Errorf("loss %v planned, %v unplanned", lp, lu)
	}
	for i := range gu {
		for j := range gu[i] {
			if gp[i][j] != gu[i][j] {
				t.Fatalf("gradient %d[%d]: %v planned, %v unplanned", i, j, gp[i][j], gu[i][j])
			}
		}
	}
	for i := range ku {
		if kp[i] != ku[i] {
			t.Fatalf("kept value %d: %v planned, %v unplanned", i, kp[i], ku[i])
		}
	}
	if arena.Size() != st.PeakFloats || int64(st.PeakFloats) >= st.SumFloats {
		t.Errorf("arena %d floats, plan peak %d, unshared %d", arena.Size(), st.PeakFloats, st.SumFloats)
	}
	// Closing the machine takes its plan out of the arena.
	mp.Close()
	if len(arena.plans) != 0 {
		t.Errorf("%d plans left after Close", len(arena.plans))
	}
}

// An op that is not the project's own cannot be placed: Compile says so.
func TestPlanRejectsForeignOps(t *testing.T) {
	b := NewBuilder(NewRegistry())
	b.UseArena(NewArena())
	x := b.Input("x", 2, 3)
	G.Let(x, tensor.New(tensor.WithShape(2, 3), tensor.Of(tensor.Float32)))
	if _, err := G.Tanh(x); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Compile(); err == nil {
		t.Fatal("a graph with Gorgonia's tanh was planned")
	}
}
