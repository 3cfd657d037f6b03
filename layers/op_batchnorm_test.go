package layers

import (
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/internal/golden"
)

// TestBatchNormParityTorch: training-mode F.batch_norm (+ residual, ReLU)
// against PyTorch: the output, the gradients of sum(y * R) for x, gamma,
// beta and the residual, and the running statistics after two passes.
func TestBatchNormParityTorch(t *testing.T) {
	f, err := golden.Load("testdata/batchnorm")
	if err != nil {
		t.Fatalf("%v (regenerate with /usr/bin/python3 scripts/golden_batchnorm.py)", err)
	}
	const n, c, h, w = 3, 6, 5, 7
	shape := []int{n, c, h, w}
	for _, tc := range []struct {
		tag       string
		res, relu bool
	}{{"plain", false, false}, {"relu", false, true}, {"res_relu", true, true}} {
		t.Run(tc.tag, func(t *testing.T) {
			p := "bn_" + tc.tag
			reg := NewRegistry()
			bn := NewFrozenBN(reg, p, c, 1e-5)
			bn.UseBatchStats(0.1)
			copy(bn.Weight.Data(), detrand.Affine(p+".weight", c, 0.5, 1.0))
			copy(bn.Bias.Data(), detrand.Symmetric(p+".bias", c, 0.5))
			b := NewBuilder(reg)
			b.Training = true
			x := b.InputRequiringGrad("x", shape...)
			if err := G.Let(x, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(detrand.Affine(p+"/x", n*c*h*w, 1.0, 4.0)))); err != nil {
				t.Fatal(err)
			}
			var res *G.Node
			wrt := []*G.Node{x, b.Param(bn.Weight), b.Param(bn.Bias)}
			if tc.res {
				res = b.InputRequiringGrad("res", shape...)
				if err := G.Let(res, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(detVals(p+"/res", shape, 1)))); err != nil {
					t.Fatal(err)
				}
				wrt = append(wrt, res)
			}
			y := b.BatchNorm(x, bn, res, tc.relu)
			ky := b.Keep(y)
			loss := b.Dot(y, detrand.Symmetric(p+"/R", n*c*h*w, 1))
			if err := b.Err(); err != nil {
				t.Fatal(err)
			}
			grads, err := G.Grad(loss, wrt...)
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewMachine(b.G)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for run := 0; run < 2; run++ {
				if err := m.Run(); err != nil {
					t.Fatal(err)
				}
			}
			compareGolden(t, f, p+"/y", ky.Data(), parityRel)
			names := []string{"dx", "dgamma", "dbeta", "dres"}
			for i, g := range grads {
				compareGolden(t, f, p+"/"+names[i], g.Value().Data().([]float32), parityRel)
			}
			compareGolden(t, f, p+"/running_mean", bn.Mean.Data(), parityRel)
			compareGolden(t, f, p+"/running_var", bn.Var.Data(), parityRel)
		})
	}
}

// TestConvBatchStatsGradients: conv + training-mode BN (+ residual, ReLU)
// against finite differences, for the input, the conv weight, gamma, beta
// and the residual.
func TestConvBatchStatsGradients(t *testing.T) {
	for _, c := range []struct {
		name      string
		res, relu bool
	}{{"plain", false, false}, {"relu", false, true}, {"res_relu", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			reg := NewRegistry()
			conv := NewConv2d(reg, "conv", 3, 4, 3, 1, 1, 1, false)
			bn := NewFrozenBN(reg, "bn", 4, 1e-5)
			bn.UseBatchStats(0.1)
			// gamma scales a whole channel, so a step crosses ReLU kinks
			// unless it is small
			gradEps = 3e-4
			defer func() { gradEps = 1e-2 }()
			shapes := [][]int{{2, 3, 6, 5}}
			if c.res {
				shapes = append(shapes, []int{2, 4, 6, 5})
			}
			checkGrads(t, reg, shapes, func(b *Builder, ins []*G.Node) *G.Node {
				b.Training = true
				var res *G.Node
				if c.res {
					res = ins[1]
				}
				return b.Conv(ins[0], conv, bn, res, c.relu)
			}, 2e-2)
		})
	}
}

// TestBatchStatsOnlyInTrainingGraphs: an inference graph uses the running
// statistics (FrozenBatchNorm2d) and leaves them alone; a training graph
// normalises each channel to zero mean and unit variance (gamma 1, beta 0)
// and moves the running statistics by the momentum.
func TestBatchStatsOnlyInTrainingGraphs(t *testing.T) {
	for _, training := range []bool{false, true} {
		reg := NewRegistry()
		bn := NewFrozenBN(reg, "bn", 2, 0)
		bn.UseBatchStats(0.5)
		bn.Mean.Data()[0], bn.Mean.Data()[1] = 1, 2
		bn.Var.Data()[0], bn.Var.Data()[1] = 4, 16
		conv := NewConv2d(reg, "conv", 1, 2, 1, 1, 0, 1, false)
		conv.Weight.Data()[0], conv.Weight.Data()[1] = 1, 2
		b := NewBuilder(reg)
		b.Training = training
		x := b.Input("x", 1, 1, 2, 2)
		if err := G.Let(x, tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float32{1, 2, 3, 4}))); err != nil {
			t.Fatal(err)
		}
		ky := b.Keep(b.Conv(x, conv, bn, nil, false))
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		m, err := NewMachine(b.G)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
		m.Close()
		var want, wantMean, wantVar []float32
		if training {
			// channel 0: x = 1..4, mean 2.5, biased var 1.25, unbiased 5/3;
			// channel 1: 2x, mean 5, var 5, unbiased 20/3
			s := float32(1 / 1.118033988749895)
			want = []float32{-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s, -1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s}
			wantMean = []float32{0.5*1 + 0.5*2.5, 0.5*2 + 0.5*5}
			wantVar = []float32{0.5*4 + 0.5*5.0/3, 0.5*16 + 0.5*20.0/3}
		} else {
			want = []float32{0, 0.5, 1, 1.5, 0, 0.5, 1, 1.5}
			wantMean, wantVar = []float32{1, 2}, []float32{4, 16}
		}
		for i, v := range ky.Data() {
			if d := v - want[i]; d > 1e-5 || d < -1e-5 {
				t.Errorf("training=%v: y[%d] = %v, want %v", training, i, v, want[i])
			}
		}
		for i := range wantMean {
			if d := bn.Mean.Data()[i] - wantMean[i]; d > 1e-5 || d < -1e-5 {
				t.Errorf("training=%v: running_mean[%d] = %v, want %v", training, i, bn.Mean.Data()[i], wantMean[i])
			}
			if d := bn.Var.Data()[i] - wantVar[i]; d > 1e-5 || d < -1e-5 {
				t.Errorf("training=%v: running_var[%d] = %v, want %v", training, i, bn.Var.Data()[i], wantVar[i])
			}
		}
	}
}

// BenchmarkBatchNormTrain: training-mode BN + residual + ReLU, forward and
// backward (dx, dgamma, dbeta, dres) on 4x64x80x80, the size of the
// quickstart's C2. Compare with scripts/bench_batchnorm_torch.py.
func BenchmarkBatchNormTrain(b *testing.B) {
	shape := []int{4, 64, 80, 80}
	n := 4 * 64 * 80 * 80
	reg := NewRegistry()
	bn := NewFrozenBN(reg, "bn", 64, 1e-5)
	bn.UseBatchStats(0.1)
	bld := NewBuilder(reg)
	bld.Training = true
	x := bld.InputRequiringGrad("x", shape...)
	res := bld.InputRequiringGrad("res", shape...)
	if err := G.Let(x, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(detrand.Symmetric("bx", n, 1)))); err != nil {
		b.Fatal(err)
	}
	if err := G.Let(res, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(detrand.Symmetric("br", n, 1)))); err != nil {
		b.Fatal(err)
	}
	y := bld.BatchNorm(x, bn, res, true)
	loss := bld.Dot(y, detrand.Symmetric("bR", n, 1))
	if _, err := G.Grad(loss, x, res, bld.Param(bn.Weight), bld.Param(bn.Bias)); err != nil {
		b.Fatal(err)
	}
	m, err := NewMachine(bld.G)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for i := 0; i < b.N; i++ {
		if err := m.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
