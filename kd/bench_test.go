package kd

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/layers"
)

// BenchmarkSSIMPyramid: the SSIM loss, forward and backward, through the
// graph ops, on five FPN levels of a 2 x 256 x (200x336 ... 13x21) pyramid
// (an 800x1344 batch of two). scripts/golden_kd.py --bench times the same
// computation in PyTorch; run both with
//
//	flock /tmp/bench.lock go test -run XXX -bench SSIMPyramid -benchtime 3x ./kd
//	flock /tmp/bench.lock /usr/bin/python3 scripts/golden_kd.py --bench
func BenchmarkSSIMPyramid(bm *testing.B) {
	benchSSIM(bm, 2, 256, [][2]int{{200, 336}, {100, 168}, {50, 84}, {25, 42}, {13, 21}})
}

// BenchmarkSSIMStudy: the same on the distillation study's and the
// quickstart's FPN (a batch of four 320x320 images, 64 channels), for CPU
// profiles of the loss at the size bench_kd_overhead measures:
//
//	go test -run XXX -bench SSIMStudy -benchtime 40x -cpuprofile /tmp/ssim.pprof ./kd
func BenchmarkSSIMStudy(bm *testing.B) {
	benchSSIM(bm, 4, 64, [][2]int{{80, 80}, {40, 40}, {20, 20}, {10, 10}, {5, 5}})
}

func benchSSIM(bm *testing.B, n, c int, levels [][2]int) {
	reg := layers.NewRegistry()
	chans := []int{c, c, c, c, c}
	d, err := NewDistiller(reg, Config{}, chans, chans, rand.New(rand.NewSource(1)))
	if err != nil {
		bm.Fatal(err)
	}
	b := layers.NewBuilder(reg)
	rng := rand.New(rand.NewSource(2))
	tc := &Teacher{}
	var xs []*G.Node
	for i, hw := range levels {
		sz := n * c * hw[0] * hw[1]
		xv := make([]float32, sz)
		tv := make([]float32, sz)
		for j := range xv {
			xv[j] = float32(rng.NormFloat64())
			tv[j] = float32(rng.NormFloat64())
		}
		x := b.InputRequiringGrad("p"+string(rune('2'+i)), n, c, hw[0], hw[1])
		if err := G.Let(x, tensor.New(tensor.WithShape(n, c, hw[0], hw[1]), tensor.WithBacking(xv))); err != nil {
			bm.Fatal(err)
		}
		xs = append(xs, x)
		tc.Levels = append(tc.Levels, tv)
		tc.Shapes = append(tc.Shapes, [4]int{n, c, hw[0], hw[1]})
	}
	loss, _, err := d.Build(b, xs, tc)
	if err != nil {
		bm.Fatal(err)
	}
	if _, err := G.Grad(loss, xs...); err != nil {
		bm.Fatal(err)
	}
	m, err := layers.NewMachine(b.G)
	if err != nil {
		bm.Fatal(err)
	}
	defer m.Close()
	if err := m.Run(); err != nil { // warm-up: scratch and gradient buffers
		bm.Fatal(err)
	}
	bm.ResetTimer()
	for i := 0; i < bm.N; i++ {
		if err := m.Run(); err != nil {
			bm.Fatal(err)
		}
	}
	bm.StopTimer()
	lv, tot := d.LastLevels()
	bm.Logf("levels %v total %v", lv, tot)
}
