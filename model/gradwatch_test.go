package model

import (
	"math"
	"testing"

	G "gorgonia.org/gorgonia"

	"github.com/skd-go/skd/layers"
)

// reverseGroups splits n parameters into k groups in reverse order (the
// last parameters first, as data-parallel buckets).
func reverseGroups(n, k int) [][]int {
	per := (n + k - 1) / k
	var groups [][]int
	for hi := n; hi > 0; hi -= per {
		var g []int
		for i := max(hi-per, 0); i < hi; i++ {
			g = append(g, i)
		}
		groups = append(groups, g)
	}
	return groups
}

// TestGradWatchReportsDuringBackward: the gradient groups are reported
// inside the backward pass, right after their last gradient, not at the
// end (the tape positions of the ops whose start reported them, recorded
// during the run), in order, and every reported gradient already has its
// final value (the arena is poisoned before each run).
func TestGradWatchReportsDuringBackward(t *testing.T) {
	d, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	d.Init(1)
	d.Arena.Poison = true
	var seen [][]float32 // copies of the reported gradients, by parameter
	var order []int
	var groups [][]int
	d.GradWatch = func(p *Program) ([][]int, func(int)) {
		groups = reverseGroups(len(p.Params), 4)
		seen = make([][]float32, len(p.Params))
		return groups, func(k int) {
			order = append(order, k)
			for _, i := range groups[k] {
				seen[i] = append(seen[i][:0], p.Gradient(i)...)
			}
		}
	}
	in := tinyInput(2, 64, 96)
	for it := 0; it < 2; it++ {
		order = order[:0]
		_, p, err := d.TrainStep(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(order) != len(groups) {
			t.Fatalf("iteration %d: reported %v, want %d groups", it, order, len(groups))
		}
		for k, got := range order {
			if got != k {
				t.Fatalf("reported out of order: %v", order)
			}
		}
		for i := range p.Params {
			g := p.Gradient(i)
			for j := range g {
				if math.Float32bits(g[j]) != math.Float32bits(seen[i][j]) {
					t.Fatalf("iteration %d: parameter %d's gradient[%d] changed after its report: %v -> %v", it, i, j, seen[i][j], g[j])
				}
			}
		}
		last, reported, tape := p.Machine.Watched()
		t.Logf("iteration %d: groups complete at tape positions %v, reported at %v, tape of %d", it, last, reported, tape)
		end := last[len(last)-1] // the backbone's gradients: the end of the backward pass
		for k := range last {
			if reported[k] <= last[k] {
				t.Errorf("group %d reported at %d, before its last gradient (%d)", k, reported[k], last[k])
			}
			if k < len(last)-1 && reported[k] >= end {
				t.Errorf("group %d reported at %d, not before the end of the backward pass (%d)", k, reported[k], end)
			}
		}
		if reported[0]-last[0] > 3 {
			t.Errorf("group 0 complete at %d but reported only at %d", last[0], reported[0])
		}
	}
}

// TestPitfallGraphOpAfterGradRunsLast pins why the gradient groups are
// watched (layers/watch.go) rather than reduced by an op in the graph: an
// op that depends only on the first bucket's gradients, added after
// G.Grad, still runs after the whole backward pass (Gorgonia's tape
// follows node creation order). If a Gorgonia upgrade schedules such an
// op as early as its inputs allow, this fails and a graph op could do.
func TestPitfallGraphOpAfterGradRunsLast(t *testing.T) {
	d, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	d.Init(1)
	p := &Program{Train: true, N: 2, H: 64, W: 96, d: d, Losses: map[string]*G.Node{}}
	b := layers.NewBuilder(d.Reg)
	b.UseArena(d.Arena)
	b.Training = true
	if err := d.forward(p, b); err != nil {
		t.Fatal(err)
	}
	if err := d.backward(p, b); err != nil {
		t.Fatal(err)
	}
	first := reverseGroups(len(p.Grads), 4)[0]
	var ins []*G.Node
	for _, i := range first {
		ins = append(ins, p.Grads[i])
	}
	op := b.Host("bucket0", []int{1}, func([][]float32, []float32) error { return nil }, ins...)
	sorted, err := G.Sort(b.G) // the machine runs it reversed
	if err != nil {
		t.Fatal(err)
	}
	pos := map[*G.Node]int{}
	for i, n := range sorted {
		pos[n] = len(sorted) - 1 - i
	}
	ready, end := 0, 0
	for _, i := range first {
		ready = max(ready, pos[p.Grads[i]])
	}
	for _, g := range p.Grads {
		end = max(end, pos[g])
	}
	t.Logf("bucket op's inputs ready at %d, backward ends at %d, bucket op runs at %d of %d", ready, end, pos[op], len(sorted))
	if pos[op] < end {
		t.Errorf("the graph op runs at %d, before the end of the backward pass (%d): Gorgonia now schedules it early", pos[op], end)
	}
}

// TestGradWatchWithoutArena: an unplanned machine does not know its ops'
// places in the tape; it reports every group, in order, after the run.
func TestGradWatchWithoutArena(t *testing.T) {
	d, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	d.Init(1)
	d.Arena = nil
	var order []int
	d.GradWatch = func(p *Program) ([][]int, func(int)) {
		return reverseGroups(len(p.Params), 3), func(k int) { order = append(order, k) }
	}
	if _, _, err := d.TrainStep(tinyInput(1, 64, 64)); err != nil {
		t.Fatal(err)
	}
	if len(order) != 3 || order[0] != 0 || order[2] != 2 {
		t.Fatalf("reported %v", order)
	}
}
