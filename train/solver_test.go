package train

import (
	"math"
	"testing"

	"github.com/skd-go/skd/layers"
)

// Reference values from torch.optim.SGD(momentum=0.9, weight_decay=0.1),
// p=[1, -2], grads [0.5, 0.25] then [-1, 2] (computed by hand with
// PyTorch's update rule; see the doc comment of SGD).
func TestSGDMatchesPyTorchRule(t *testing.T) {
	reg := layers.NewRegistry()
	p := reg.Add("w", 2)
	copy(p.Data(), []float32{1, -2})
	s := NewSGD(0.9, 0.1, false)
	// step 1: d = g + 0.1p = [0.6, 0.05]; buf = d; p -= 0.5*buf -> [0.7, -2.025]
	if err := s.Step([]*layers.Param{p}, [][]float32{{0.5, 0.25}}, 0.5); err != nil {
		t.Fatal(err)
	}
	want := []float64{0.7, -2.025}
	for i, v := range p.Data() {
		if math.Abs(float64(v)-want[i]) > 1e-6 {
			t.Fatalf("step 1: %v, want %v", p.Data(), want)
		}
	}
	// step 2: d = [-1+0.07, 2-0.2025] = [-0.93, 1.7975]; buf = 0.9*[0.6,0.05] + d = [-0.39, 1.8425]
	// p -= 0.5*buf -> [0.895, -2.94625]
	s.Step([]*layers.Param{p}, [][]float32{{-1, 2}}, 0.5)
	want = []float64{0.895, -2.94625}
	for i, v := range p.Data() {
		if math.Abs(float64(v)-want[i]) > 1e-5 {
			t.Fatalf("step 2: %v, want %v", p.Data(), want)
		}
	}
}

// A zero gradient still decays the weights (Gorgonia's Momentum solver
// does not; see layers/gorgonia_pitfalls_test.go).
func TestSGDDecaysWithZeroGradient(t *testing.T) {
	reg := layers.NewRegistry()
	p := reg.Add("w", 1)
	p.Data()[0] = 1
	s := NewSGD(0.9, 1e-3, false)
	s.Step([]*layers.Param{p}, [][]float32{{0}}, 1)
	if got := p.Data()[0]; math.Abs(float64(got)-0.999) > 1e-7 {
		t.Fatalf("weight %v after decay, want 0.999", got)
	}
}

func TestNoDecayNormBias(t *testing.T) {
	reg := layers.NewRegistry()
	b := reg.Add("b", 3)
	b.NoDecay = true
	copy(b.Data(), []float32{1, 1, 1})
	s := NewSGD(0, 0.5, true)
	s.Step([]*layers.Param{b}, [][]float32{{0, 0, 0}}, 1)
	if b.Data()[0] != 1 {
		t.Fatalf("bias decayed: %v", b.Data())
	}
}

func TestClipGradNorm(t *testing.T) {
	g := [][]float32{{3}, {4}}
	if n := ClipGradNorm(g, 1); math.Abs(n-5) > 1e-9 {
		t.Fatalf("norm %v", n)
	}
	if math.Abs(float64(g[0][0])-0.6) > 1e-6 || math.Abs(float64(g[1][0])-0.8) > 1e-6 {
		t.Fatalf("clipped %v", g)
	}
}

func TestScheduleMatchesDetectron2(t *testing.T) {
	s := Schedule{BaseLR: 0.02, WarmupIters: 1000, WarmupFactor: 0.001, Steps: []int{60000, 80000}, Gamma: 0.1}
	cases := map[int]float64{0: 0.02 * 0.001, 500: 0.02 * (0.001*0.5 + 0.5), 1000: 0.02, 59999: 0.02, 60000: 0.002, 79999: 0.002, 80000: 0.0002}
	for it, want := range cases {
		if got := s.LR(it); math.Abs(got-want) > 1e-12 {
			t.Errorf("LR(%d) = %v, want %v", it, got, want)
		}
	}
}
