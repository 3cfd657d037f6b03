package layers

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gradCase builds a graph y = f(inputs...) on b and returns y; the check
// differentiates loss = sum(y * r) with a fixed random r.
type gradCase func(b *Builder, ins []*G.Node) *G.Node

// checkGrads compares Gorgonia's gradients of loss w.r.t. the given input
// tensors (and trainable params of reg) with central finite differences.
func checkGrads(t *testing.T, reg *Registry, inShapes [][]int, build gradCase, tol float64) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	for _, p := range reg.Params() {
		if p.Buffer {
			continue
		}
		for i := range p.Data() {
			p.Data()[i] = float32(rng.NormFloat64() * 0.5)
		}
	}
	b := NewBuilder(reg)
	var ins []*G.Node
	var inVals []*tensor.Dense
	for i, s := range inShapes {
		n := b.InputRequiringGrad("in"+string(rune('0'+i)), s...)
		v := tensor.New(tensor.WithShape(s...), tensor.Of(tensor.Float32))
		for j := range v.Data().([]float32) {
			v.Data().([]float32)[j] = float32(rng.NormFloat64())
		}
		if err := G.Let(n, v); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, n)
		inVals = append(inVals, v)
	}
	y := build(b, ins)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	numel := y.Shape().TotalSize()
	r := tensor.New(tensor.WithShape(numel), tensor.Of(tensor.Float32))
	for j := range r.Data().([]float32) {
		r.Data().([]float32)[j] = float32(rng.NormFloat64())
	}
	rn := G.NewVector(b.G, tensor.Float32, G.WithShape(numel), G.WithName("r"), G.WithValue(r))
	flat := G.Must(G.Reshape(y, tensor.Shape{numel}))
	loss := G.Must(G.Sum(G.Must(G.HadamardProd(flat, rn))))
	pnodes, params := b.TrainableNodes()
	wrt := append(append([]*G.Node{}, ins...), pnodes...)
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(b.G)
	defer m.Close()
	run := func() float64 {
		m.Reset()
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		return float64(loss.Value().Data().(float32))
	}
	run()
	// snapshot analytic grads
	analytic := make([][]float32, len(grads))
	for i, g := range grads {
		analytic[i] = append([]float32(nil), g.Value().Data().([]float32)...)
	}
	datas := make([][]float32, 0, len(wrt))
	for _, v := range inVals {
		datas = append(datas, v.Data().([]float32))
	}
	for _, p := range params {
		datas = append(datas, p.Data())
	}
	eps := gradEps
	for i, d := range datas {
		idx := rng.Perm(len(d))
		if len(idx) > 12 {
			idx = idx[:12]
		}
		for _, j := range idx {
			orig := d[j]
			hi, lo := orig+float32(eps), orig-float32(eps)
			d[j] = hi
			lp := run()
			d[j] = lo
			lm := run()
			d[j] = orig
			fd := (lp - lm) / float64(hi-lo)
			an := float64(analytic[i][j])
			if math.Abs(fd-an) > tol*(1+math.Abs(fd)) {
				t.Errorf("wrt %d (%s) elem %d: analytic %.5f, finite difference %.5f", i, wrt[i].Name(), j, an, fd)
			}
		}
	}
}

func TestConvOpGradients(t *testing.T) {
	cases := []struct {
		name                string
		k, stride, pad, dil int
		bias, bn, res, relu bool
	}{
		{"plain3x3", 3, 1, 1, 1, false, false, false, false},
		{"bias_relu_s2", 3, 2, 1, 1, true, false, false, true},
		{"bn_relu", 3, 1, 1, 1, false, true, false, true},
		{"bn_res_relu_1x1", 1, 1, 0, 1, false, true, true, true},
		{"bn_bias_res_dil2", 3, 1, 2, 2, true, true, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := NewRegistry()
			conv := NewConv2d(reg, "conv", 3, 4, c.k, c.stride, c.pad, c.dil, c.bias)
			var bn *FrozenBN
			if c.bn {
				bn = NewFrozenBN(reg, "bn", 4, 1e-5)
				for i := range bn.Weight.Data() {
					bn.Weight.Data()[i] = 0.5 + float32(i)*0.3
					bn.Bias.Data()[i] = 0.1 * float32(i)
					bn.Mean.Data()[i] = -0.2 + 0.1*float32(i)
					bn.Var.Data()[i] = 0.5 + float32(i)
				}
			}
			shapes := [][]int{{2, 3, 7, 6}}
			oh := (7+2*c.pad-c.dil*(c.k-1)-1)/c.stride + 1
			ow := (6+2*c.pad-c.dil*(c.k-1)-1)/c.stride + 1
			if c.res {
				shapes = append(shapes, []int{2, 4, oh, ow})
			}
			checkGrads(t, reg, shapes, func(b *Builder, ins []*G.Node) *G.Node {
				var res *G.Node
				if c.res {
					res = ins[1]
				}
				return b.Conv(ins[0], conv, bn, res, c.relu)
			}, 2e-2)
		})
	}
}

func TestPoolUpsampleGradients(t *testing.T) {
	reg := NewRegistry()
	checkGrads(t, reg, [][]int{{1, 2, 7, 5}}, func(b *Builder, ins []*G.Node) *G.Node {
		return b.MaxPool(ins[0], 3, 2, 1)
	}, 2e-2)
	checkGrads(t, reg, [][]int{{1, 2, 3, 4}}, func(b *Builder, ins []*G.Node) *G.Node {
		return b.UpsampleNearest(ins[0], 6, 8)
	}, 2e-2)
	checkGrads(t, reg, [][]int{{1, 2, 3, 4}}, func(b *Builder, ins []*G.Node) *G.Node {
		return b.UpsampleNearest(ins[0], 7, 9)
	}, 2e-2)
}

// Trainable BN affine (frozen statistics): gradients of the BN weight and
// bias through the fused conv, with and without residual and ReLU.
func TestConvTrainableAffineGradients(t *testing.T) {
	for _, c := range []struct {
		name      string
		res, relu bool
	}{{"plain", false, false}, {"relu", false, true}, {"res_relu", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			reg := NewRegistry()
			conv := NewConv2d(reg, "conv", 3, 4, 3, 1, 1, 1, false)
			bn := NewFrozenBN(reg, "bn", 4, 1e-5)
			bn.TrainAffine()
			// a BN shift moves every position of a channel, so a 1e-2 step
			// crosses ReLU kinks; a smaller step stays on one side
			gradEps = 1e-3
			defer func() { gradEps = 1e-2 }()
			shapes := [][]int{{2, 3, 6, 5}}
			if c.res {
				shapes = append(shapes, []int{2, 4, 6, 5})
			}
			checkGrads(t, reg, shapes, func(b *Builder, ins []*G.Node) *G.Node {
				for i := range bn.Mean.Data() {
					bn.Mean.Data()[i] = 0.1 * float32(i)
					bn.Var.Data()[i] = 0.5 + float32(i)
				}
				var res *G.Node
				if c.res {
					res = ins[1]
				}
				return b.Conv(ins[0], conv, bn, res, c.relu)
			}, 2e-2)
		})
	}
}

// gradEps is checkGrads' finite-difference step.
var gradEps = 1e-2
