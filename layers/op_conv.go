package layers

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/kernels"
)

// convOp is the project's fused convolution:
//
//	y = act( (conv(x, w) + b) * scale + shift + res )
//
// where scale/shift come from a FrozenBatchNorm2d (nil: identity), b is an
// optional trainable bias, res an optional residual input and act an
// optional ReLU. Fusing keeps one activation tensor per conv block instead
// of four, which is most of the memory a Gorgonia graph holds.
//
// Inputs: x, w, then b if hasBias, then res if hasRes, then the BN weight
// and bias if hasAffine (trainable BN affine with frozen statistics, as
// mmdetection's norm_eval=True, requires_grad=True).
type convOp struct {
	opBase
	p       kernels.ConvParams
	hasBias bool
	hasRes  bool
	// hasAffine: the BN weight and bias are graph inputs with gradients.
	hasAffine bool
	relu      bool
	bn        *BatchNorm2d
	ws        *kernels.ConvWorkspace

	// which inputs get gradients (decided at build time)
	needDX, needDW, needDB, needDRes bool
	needDGamma, needDBeta            bool

	scale, shift []float32 // folded BN, refreshed every forward
}

func (op *convOp) Arity() int {
	n := 2
	if op.hasBias {
		n++
	}
	if op.hasRes {
		n++
	}
	if op.hasAffine {
		n += 2
	}
	return n
}

func (op *convOp) Type() hm.Type {
	dims := []int{4, 4}
	if op.hasBias {
		dims = append(dims, 1)
	}
	if op.hasRes {
		dims = append(dims, 4)
	}
	if op.hasAffine {
		dims = append(dims, 1, 1)
	}
	return fnType(4, dims...)
}

func (op *convOp) outShape() tensor.Shape {
	oh, ow := op.p.OutHW()
	return tensor.Shape{op.p.N, op.p.K, oh, ow}
}

func (op *convOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.outShape(), nil
}

func (op *convOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// refreshBN recomputes the folded scale and shift from the BN parameters
// (cheap: one value per channel), so weights loaded after graph
// construction are always honoured.
func (op *convOp) refreshBN() {
	if op.bn == nil {
		return
	}
	if op.scale == nil {
		op.scale = make([]float32, op.p.K)
		op.shift = make([]float32, op.p.K)
	}
	op.bn.Fold(op.scale, op.shift)
}

func (op *convOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%s: %d inputs, want %d", op.name, len(in), op.Arity())
	}
	var x, w []float32
	err := unpack(op.name, in, &x, &w)
	if err != nil {
		return nil, err
	}
	if want := (tensor.Shape{op.p.N, op.p.C, op.p.H, op.p.W}); !shapeOf(in[0]).Eq(want) {
		return nil, fmt.Errorf("%s: input shape %v, graph built for %v", op.name, shapeOf(in[0]), want)
	}
	k := 2
	var b, res []float32
	if op.hasBias {
		if b, err = f32(in[k]); err != nil {
			return nil, err
		}
		k++
	}
	if op.hasRes {
		if res, err = f32(in[k]); err != nil {
			return nil, err
		}
	}
	out := op.out(prealloc, op.outShape())
	y := out.Data().([]float32)
	kernels.ConvForward(op.p, x, w, nil, y, op.ws)
	op.refreshBN()
	oh, ow := op.p.OutHW()
	epilogue(y, op.p.N, op.p.K, oh*ow, op.scale, op.shift, b, res, op.relu)
	return out, nil
}

// epilogue applies y = act(y*scale + shift + b + res) per channel.
func epilogue(y []float32, n, k, hw int, scale, shift, b, res []float32, relu bool) {
	kernels.ParallelFor(n*k, func(lo, hi int) {
		for nk := lo; nk < hi; nk++ {
			c := nk % k
			s, t := float32(1), float32(0)
			if scale != nil {
				s, t = scale[c], shift[c]
			}
			if b != nil {
				t += b[c] * s // the bias is the conv's: it goes through BN
			}
			ys := y[nk*hw : (nk+1)*hw]
			if res != nil {
				rs := res[nk*hw : (nk+1)*hw]
				for i, v := range ys {
					ys[i] = v*s + t + rs[i]
				}
			} else if s != 1 || t != 0 {
				for i, v := range ys {
					ys[i] = v*s + t
				}
			}
			if relu {
				for i, v := range ys {
					if !(v > 0) && v == v { // keep NaN visible
						ys[i] = 0
					}
				}
			}
		}
	})
}

func (op *convOp) DiffWRT(n int) []bool {
	d := []bool{op.needDX, op.needDW}
	if op.hasBias {
		d = append(d, op.needDB)
	}
	if op.hasRes {
		d = append(d, op.needDRes)
	}
	if op.hasAffine {
		d = append(d, op.needDGamma, op.needDBeta)
	}
	return d
}

func (op *convOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	ret := make(G.Nodes, len(inputs))
	// g: gradient through the activation (unscaled); gs: times BN scale.
	var g, gs *G.Node
	var err error
	unscaled := func() (*G.Node, error) {
		if g != nil {
			return g, nil
		}
		if !op.relu {
			g = grad
			return g, nil
		}
		g, err = G.ApplyOp(&gradPreOp{opBase: opBase{name: op.name + ".dmask", id: op.id}, sig: newSig(op.outShape(), 4, 4), fwd: op, mask: true}, output, grad)
		return g, err
	}
	scaled := func() (*G.Node, error) {
		if gs != nil {
			return gs, nil
		}
		if op.bn == nil {
			gs, err = unscaled()
			return gs, err
		}
		pre := &gradPreOp{opBase: opBase{name: op.name + ".dscale", id: op.id}, sig: newSig(op.outShape(), 4, 4), fwd: op, mask: op.relu, scale: true}
		gs, err = G.ApplyOp(pre, output, grad)
		return gs, err
	}
	if op.needDX || op.needDW {
		if _, err := scaled(); err != nil {
			return nil, err
		}
	}
	if op.needDX {
		if ret[0], err = G.ApplyOp(&convBwdDataOp{opBase: opBase{name: op.name + ".dx", id: op.id}, sig: newSig(tensor.Shape{op.p.N, op.p.C, op.p.H, op.p.W}, 4, 4), fwd: op}, gs, inputs[1]); err != nil {
			return nil, err
		}
	}
	if op.needDW {
		if ret[1], err = G.ApplyOp(&convBwdWeightOp{opBase: opBase{name: op.name + ".dw", id: op.id}, sig: newSig(tensor.Shape{op.p.K, op.p.C, op.p.KH, op.p.KW}, 4, 4), fwd: op}, inputs[0], gs); err != nil {
			return nil, err
		}
	}
	k := 2
	if op.hasBias {
		if op.needDB {
			if _, err := scaled(); err != nil {
				return nil, err
			}
			if ret[k], err = G.ApplyOp(&channelSumOp{opBase: opBase{name: op.name + ".db", id: op.id}, n: op.p.N, c: op.p.K, sig: newSig(tensor.Shape{op.p.K}, 4)}, gs); err != nil {
				return nil, err
			}
		}
		k++
	}
	var resNode *G.Node
	if op.hasRes {
		resNode = inputs[k]
		if op.needDRes {
			if _, err := unscaled(); err != nil {
				return nil, err
			}
			ret[k] = g
		}
		k++
	}
	if op.hasAffine {
		if op.needDGamma || op.needDBeta {
			if _, err := unscaled(); err != nil {
				return nil, err
			}
		}
		if op.needDGamma {
			gin := G.Nodes{output, g}
			if resNode != nil {
				gin = append(gin, resNode)
			}
			if ret[k], err = G.ApplyOp(&bnGammaGradOp{opBase: opBase{name: op.name + ".dgamma", id: op.id}, fwd: op}, gin...); err != nil {
				return nil, err
			}
		}
		if op.needDBeta {
			if ret[k+1], err = G.ApplyOp(&channelSumOp{opBase: opBase{name: op.name + ".dbeta", id: op.id}, n: op.p.N, c: op.p.K, sig: newSig(tensor.Shape{op.p.K}, 4)}, g); err != nil {
				return nil, err
			}
		}
	}
	return ret, nil
}

// bnGammaGradOp is the gradient of a trainable BN weight: with
// y = (c + b - mean) * gamma * inv + beta + res (inv = rsqrt(var + eps)),
// dL/dgamma = sum g * (c + b - mean) * inv, and where g is non-zero (the
// ReLU let it through) the normalised value is recovered from the output:
// (c + b - mean) * inv = (y - res - beta) / gamma. A channel whose gamma is
// 0 gets no gradient (its value cannot be recovered; the reference
// frameworks never reach gamma == 0 either).
type bnGammaGradOp struct {
	opBase
	fwd *convOp
}

func (op *bnGammaGradOp) Arity() int {
	if op.fwd.hasRes {
		return 3
	}
	return 2
}
func (op *bnGammaGradOp) Type() hm.Type {
	if op.fwd.hasRes {
		return fnType(1, 4, 4, 4)
	}
	return fnType(1, 4, 4)
}
func (op *bnGammaGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.fwd.p.K}, nil
}
func (op *bnGammaGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *bnGammaGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var y, g []float32
	err := unpack(op.name, in, &y, &g)
	if err != nil {
		return nil, err
	}
	var res []float32
	if op.fwd.hasRes {
		if res, err = f32(in[2]); err != nil {
			return nil, err
		}
	}
	k := op.fwd.p.K
	out := op.out(prealloc, tensor.Shape{k})
	dg := out.Data().([]float32)
	gamma, beta := op.fwd.bn.Weight.Data(), op.fwd.bn.Bias.Data()
	hw := len(y) / (op.fwd.p.N * k)
	sums := make([]float64, k)
	kernels.ParallelFor(k, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			if gamma[c] == 0 {
				continue
			}
			var s float64
			for n := 0; n < op.fwd.p.N; n++ {
				base := (n*k + c) * hw
				for i := base; i < base+hw; i++ {
					if g[i] == 0 {
						continue
					}
					v := y[i] - beta[c]
					if res != nil {
						v -= res[i]
					}
					s += float64(g[i]) * float64(v)
				}
			}
			sums[c] = s / float64(gamma[c])
		}
	})
	for c := range dg {
		dg[c] = float32(sums[c])
	}
	return out, nil
}

// gradPreOp computes dy * (y > 0 if mask) * (BN scale per channel if
// scale): the gradient entering the convolution proper.
type gradPreOp struct {
	opBase
	sig
	fwd         *convOp
	mask, scale bool
}

func (op *gradPreOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *gradPreOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var y, dy []float32
	err := unpack(op.name, in, &y, &dy)
	if err != nil {
		return nil, err
	}
	out := op.out(prealloc, op.fwd.outShape())
	g := out.Data().([]float32)
	oh, ow := op.fwd.p.OutHW()
	hw, k := oh*ow, op.fwd.p.K
	var scale []float32
	if op.scale {
		op.fwd.refreshBN()
		scale = op.fwd.scale
	}
	kernels.ParallelFor(op.fwd.p.N*k, func(lo, hi int) {
		for nk := lo; nk < hi; nk++ {
			s := float32(1)
			if scale != nil {
				s = scale[nk%k]
			}
			ys, dys, gs := y[nk*hw:(nk+1)*hw], dy[nk*hw:(nk+1)*hw], g[nk*hw:(nk+1)*hw]
			for i, d := range dys {
				if op.mask && !(ys[i] > 0) {
					gs[i] = 0
				} else {
					gs[i] = d * s
				}
			}
		}
	})
	return out, nil
}

// convBwdDataOp: dx = conv^T(gs, w).
type convBwdDataOp struct {
	opBase
	sig
	fwd *convOp
}

func (op *convBwdDataOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *convBwdDataOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var gs, w []float32
	err := unpack(op.name, in, &gs, &w)
	if err != nil {
		return nil, err
	}
	s, _ := op.InferShape()
	out := op.out(prealloc, s)
	kernels.ConvBackwardData(op.fwd.p, gs, w, out.Data().([]float32), op.fwd.ws)
	return out, nil
}

// convBwdWeightOp: dw = corr(x, gs).
type convBwdWeightOp struct {
	opBase
	sig
	fwd *convOp
}

func (op *convBwdWeightOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *convBwdWeightOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var x, gs []float32
	err := unpack(op.name, in, &x, &gs)
	if err != nil {
		return nil, err
	}
	s, _ := op.InferShape()
	out := op.out(prealloc, s)
	kernels.ConvBackwardWeight(op.fwd.p, x, gs, out.Data().([]float32), nil, op.fwd.ws)
	return out, nil
}

// channelSumOp sums an N x C x ... tensor over everything but C (bias
// gradients).
type channelSumOp struct {
	opBase
	sig
	n, c int
}

func (op *channelSumOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *channelSumOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var g []float32
	err := unpack(op.name, in, &g)
	if err != nil {
		return nil, err
	}
	out := op.out(prealloc, tensor.Shape{op.c})
	db := out.Data().([]float32)
	hw := len(g) / (op.n * op.c)
	kernels.ParallelFor(op.c, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var s float64
			for n := 0; n < op.n; n++ {
				for _, v := range g[(n*op.c+c)*hw : (n*op.c+c+1)*hw] {
					s += float64(v)
				}
			}
			db[c] = float32(s)
		}
	})
	return out, nil
}

// BatchNorm2d is a 2-D batch normalisation in one of two modes. Frozen
// (NewFrozenBN, the default): torchvision's FrozenBatchNorm2d, a fixed
// per-channel affine map y = (x - mean) / sqrt(var + eps) * weight + bias,
// which Conv folds into the convolution. Training (UseBatchStats):
// torch.nn.BatchNorm2d, whose training graphs normalise with the batch's
// statistics and update the running ones.
type BatchNorm2d struct {
	Weight, Bias, Mean, Var *Param
	Eps                     float32
	// BatchStats (set by UseBatchStats): training graphs use the batch's
	// statistics and update Mean and Var with Momentum.
	BatchStats bool
	Momentum   float32
	// Sync, when set, makes the batch statistics those of the whole
	// data-parallel batch (SyncBN; see StatReducer in op_batchnorm.go).
	Sync StatReducer
}

// FrozenBN is the name BatchNorm2d had when it was only frozen.
type FrozenBN = BatchNorm2d

// NewFrozenBN registers name.{weight,bias,running_mean,running_var} as
// buffers (never trained), initialised to the identity map.
func NewFrozenBN(reg *Registry, name string, c int, eps float32) *BatchNorm2d {
	bn := &BatchNorm2d{
		Weight: reg.AddBuffer(name+".weight", c),
		Bias:   reg.AddBuffer(name+".bias", c),
		Mean:   reg.AddBuffer(name+".running_mean", c),
		Var:    reg.AddBuffer(name+".running_var", c),
		Eps:    eps,
	}
	fill(bn.Weight.Data(), 1)
	fill(bn.Var.Data(), 1)
	return bn
}

// TrainAffine makes the BN weight and bias trainable (statistics stay
// frozen): mmdetection's norm_eval=True with requires_grad=True. They are
// excluded from weight decay by solvers that honour NoDecay.
func (bn *BatchNorm2d) TrainAffine() {
	for _, p := range []*Param{bn.Weight, bn.Bias} {
		p.Buffer, p.Frozen, p.NoDecay = false, false, true
	}
}

// Fold writes the equivalent per-channel scale and shift, computed as
// torchvision does: scale = w * rsqrt(var + eps), shift = b - mean * scale.
func (bn *BatchNorm2d) Fold(scale, shift []float32) {
	w, b, m, v := bn.Weight.Data(), bn.Bias.Data(), bn.Mean.Data(), bn.Var.Data()
	for i := range scale {
		s := w[i] * float32(1/math.Sqrt(float64(v[i]+bn.Eps)))
		scale[i] = s
		shift[i] = b[i] - m[i]*s
	}
}

func fill(xs []float32, v float32) {
	for i := range xs {
		xs[i] = v
	}
}
