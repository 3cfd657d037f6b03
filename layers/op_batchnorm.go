package layers

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/kernels"
)

// UseBatchStats turns bn into a training-mode BatchNorm2d (torch.nn's
// semantics, detectron2's norm "BN"): graphs built with Builder.Training
// normalise with the statistics of the batch and update the running ones
// by an exponential average (running = (1-momentum)*running +
// momentum*batch, the variance unbiased), while inference graphs use the
// running statistics exactly as FrozenBatchNorm2d. The weight and bias
// become trainable (no weight decay). Training from scratch needs this:
// frozen identity statistics leave a deep network unnormalised.
func (bn *BatchNorm2d) UseBatchStats(momentum float32) {
	bn.TrainAffine()
	bn.BatchStats = true
	bn.Momentum = momentum
}

// BatchNorm applies y = act(bn_train(x) + res) with the batch's statistics
// (see UseBatchStats); res may be nil. It is what Conv emits after the
// convolution when its BN uses batch statistics in a training graph.
func (b *Builder) BatchNorm(x *G.Node, bn *BatchNorm2d, res *G.Node, relu bool) *G.Node {
	if b.err != nil || x == nil {
		return b.Fail(fmt.Errorf("batchnorm: missing input"))
	}
	s := x.Shape()
	if len(s) != 4 || s[1] != len(bn.Weight.Data()) {
		return b.Fail(fmt.Errorf("batchnorm %s: input shape %v, want N x %d x H x W", bn.Weight.Name, s, len(bn.Weight.Data())))
	}
	if s[0]*s[2]*s[3] < 2 {
		return b.Fail(fmt.Errorf("batchnorm %s: input %v has one value per channel; batch statistics need more", bn.Weight.Name, s))
	}
	if !bn.Weight.Trainable() || !bn.Bias.Trainable() {
		return b.Fail(fmt.Errorf("batchnorm %s: batch statistics need a trainable weight and bias", bn.Weight.Name))
	}
	op := &batchNormOp{opBase: opBase{name: "batchnorm(" + bn.Weight.Name + ")", id: b.nextID()},
		n: s[0], c: s[1], hw: s[2] * s[3], shape: tensor.Shape(s).Clone(), bn: bn, relu: relu,
		needDX: b.NeedsGrad(x)}
	inputs := []*G.Node{x, b.Param(bn.Weight), b.Param(bn.Bias)}
	if res != nil {
		if !res.Shape().Eq(x.Shape()) {
			return b.Fail(fmt.Errorf("batchnorm %s: residual shape %v, want %v", bn.Weight.Name, res.Shape(), s))
		}
		op.hasRes = true
		op.needDRes = b.NeedsGrad(res)
		inputs = append(inputs, res)
	}
	return b.apply(op, inputs...)
}

// batchNormOp is training-mode batch normalisation fused with an optional
// residual add and ReLU:
//
//	y = act( (x - mean_c) * invstd_c * gamma_c + beta_c + res )
//
// with mean_c and the biased variance over N, H, W. The forward pass keeps
// mean and invstd for the backward ops and updates the BN's running
// statistics. Inputs: x, gamma, beta, then res if hasRes.
type batchNormOp struct {
	opBase
	n, c, hw int
	shape    tensor.Shape
	bn       *BatchNorm2d
	relu     bool
	hasRes   bool

	needDX, needDRes bool

	mean, invstd []float64 // of the last forward
	// SyncBN: the element count of the whole data-parallel batch, this
	// rank's sum(g) and sum(g*xhat) (for dbeta and dgamma) and the
	// forward's reduction buffer
	cntAll   float64
	localSGX []float64
	syncBuf  []float64
	// dxSG and dxSGX are sum(g) and sum(g*xhat) per channel (this rank's)
	// as the dx op last computed them; the dgamma and dbeta ops, which then
	// take dx as an input so that they run after it, read them instead of
	// making more passes over x and g.
	dxSG, dxSGX []float64
}

func (op *batchNormOp) Arity() int {
	if op.hasRes {
		return 4
	}
	return 3
}

func (op *batchNormOp) Type() hm.Type {
	if op.hasRes {
		return fnType(4, 4, 1, 1, 4)
	}
	return fnType(4, 4, 1, 1)
}

func (op *batchNormOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape, nil }
func (op *batchNormOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }

func (op *batchNormOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%s: %d inputs, want %d", op.name, len(in), op.Arity())
	}
	if !shapeOf(in[0]).Eq(op.shape) {
		return nil, fmt.Errorf("%s: input shape %v, graph built for %v", op.name, shapeOf(in[0]), op.shape)
	}
	var x, gamma, beta []float32
	err := unpack(op.name, in, &x, &gamma, &beta)
	if err != nil {
		return nil, err
	}
	var res []float32
	if op.hasRes {
		if res, err = f32(in[3]); err != nil {
			return nil, err
		}
	}
	if op.mean == nil {
		op.mean = make([]float64, op.c)
		op.invstd = make([]float64, op.c)
	}
	out := op.out(prealloc, op.shape)
	y := out.Data().([]float32)
	n, k, hw := op.n, op.c, op.hw
	cnt := float64(n * hw)
	if op.bn.Sync != nil {
		if err := op.syncForward(x, gamma, beta, res, y); err != nil {
			return nil, err
		}
		return out, nil
	}
	kernels.ParallelFor(k, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			// One pass over the channel: sums of v-shift and (v-shift)^2
			// with shift one of its values, so that a large mean does not
			// cancel the variance away (a shifted single pass, as Welford
			// without the per-value division).
			shift := x[c*hw]
			var s1, s2 float64
			for i := 0; i < n; i++ {
				a, b := shiftedSums(x[(i*k+c)*hw:(i*k+c+1)*hw], shift)
				s1 += a
				s2 += b
			}
			mean := float64(shift) + s1/cnt
			ss := max(0, s2-s1*s1/cnt)
			op.normalize(c, mean, ss, cnt, x, gamma, beta, res, y)
		}
	})
	return out, nil
}

// statBlock is the number of values summed in float32 (four accumulators
// of 64) before a float64 add, in the BN statistics and backward sums.
const statBlock = 256

// shiftedSums returns sum(v-shift) and sum((v-shift)^2) over xs: float32
// partial sums in four independent chains per block (not latency bound),
// float64 across blocks.
func shiftedSums(xs []float32, shift float32) (s1, s2 float64) {
	for len(xs) > 0 {
		b := xs[:min(statBlock, len(xs))]
		xs = xs[len(b):]
		var a0, a1, a2, a3, q0, q1, q2, q3 float32
		j := 0
		for ; j+4 <= len(b); j += 4 {
			v := b[j : j+4 : j+4]
			d0, d1, d2, d3 := v[0]-shift, v[1]-shift, v[2]-shift, v[3]-shift
			a0, a1, a2, a3 = a0+d0, a1+d1, a2+d2, a3+d3
			q0, q1, q2, q3 = q0+d0*d0, q1+d1*d1, q2+d2*d2, q3+d3*d3
		}
		for ; j < len(b); j++ {
			d := b[j] - shift
			a0 += d
			q0 += d * d
		}
		s1 += float64((a0 + a1) + (a2 + a3))
		s2 += float64((q0 + q1) + (q2 + q3))
	}
	return s1, s2
}

// gradSums returns sum(g) and sum(g*(x-mean)) over one plane, blocked like
// shiftedSums.
func gradSums(xs, gs []float32, mean float32) (sg, sgx float64) {
	gs = gs[:len(xs)]
	for len(xs) > 0 {
		nb := min(statBlock, len(xs))
		xb, gb := xs[:nb], gs[:nb]
		xs, gs = xs[nb:], gs[nb:]
		var a0, a1, a2, a3, b0, b1, b2, b3 float32
		j := 0
		for ; j+4 <= nb; j += 4 {
			xv, gv := xb[j:j+4:j+4], gb[j:j+4:j+4]
			a0, a1, a2, a3 = a0+gv[0], a1+gv[1], a2+gv[2], a3+gv[3]
			b0 += gv[0] * (xv[0] - mean)
			b1 += gv[1] * (xv[1] - mean)
			b2 += gv[2] * (xv[2] - mean)
			b3 += gv[3] * (xv[3] - mean)
		}
		for ; j < nb; j++ {
			a0 += gb[j]
			b0 += gb[j] * (xb[j] - mean)
		}
		sg += float64((a0 + a1) + (a2 + a3))
		sgx += float64((b0 + b1) + (b2 + b3))
	}
	return sg, sgx
}

// normalize finishes channel c of the forward pass from its mean and
// centred sum of squares ss over cnt values: keeps mean and invstd, updates
// the running statistics, writes y.
func (op *batchNormOp) normalize(c int, mean, ss, cnt float64, x, gamma, beta, res, y []float32) {
	n, k, hw := op.n, op.c, op.hw
	eps := float64(op.bn.Eps)
	mom := float64(op.bn.Momentum)
	rm, rv := op.bn.Mean.Data(), op.bn.Var.Data()
	inv := 1 / math.Sqrt(ss/cnt+eps)
	op.mean[c], op.invstd[c] = mean, inv
	rm[c] = float32((1-mom)*float64(rm[c]) + mom*mean)
	rv[c] = float32((1-mom)*float64(rv[c]) + mom*ss/(cnt-1))
	sc := float32(inv * float64(gamma[c]))
	sh := beta[c] - float32(mean)*sc
	for i := 0; i < n; i++ {
		lo, hi := (i*k+c)*hw, (i*k+c+1)*hw
		xs, ys := x[lo:hi], y[lo:hi]
		ys = ys[:len(xs)]
		// max(v, 0) is ReLU with NaN kept visible (and -0 -> 0).
		switch {
		case res != nil && op.relu:
			rs := res[lo:hi]
			rs = rs[:len(xs)]
			for j, v := range xs {
				ys[j] = max(v*sc+sh+rs[j], 0)
			}
		case res != nil:
			rs := res[lo:hi]
			rs = rs[:len(xs)]
			for j, v := range xs {
				ys[j] = v*sc + sh + rs[j]
			}
		case op.relu:
			for j, v := range xs {
				ys[j] = max(v*sc+sh, 0)
			}
		default:
			for j, v := range xs {
				ys[j] = v*sc + sh
			}
		}
	}
}

func (op *batchNormOp) DiffWRT(int) []bool {
	d := []bool{op.needDX, op.bn.Weight.Trainable(), op.bn.Bias.Trainable()}
	if op.hasRes {
		d = append(d, op.needDRes)
	}
	return d
}

func (op *batchNormOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	ret := make(G.Nodes, len(inputs))
	g := grad
	var err error
	if op.relu {
		mask := &reluMaskOp{opBase: opBase{name: op.name + ".dmask", id: op.id}, sig: newSig(op.shape, 4, 4)}
		if g, err = G.ApplyOp(mask, output, grad); err != nil {
			return nil, err
		}
	}
	if op.needDX {
		dx := &batchNormDXOp{opBase: opBase{name: op.name + ".dx", id: op.id}, sig: newSig(op.shape, 4, 4, 1), fwd: op}
		if ret[0], err = G.ApplyOp(dx, inputs[0], g, inputs[1]); err != nil {
			return nil, err
		}
	}
	if op.bn.Weight.Trainable() {
		dg := &batchNormDGammaOp{opBase: opBase{name: op.name + ".dgamma", id: op.id}, fwd: op}
		in := G.Nodes{inputs[0], g}
		if ret[0] != nil {
			dg.afterDX = true
			in = append(in, ret[0])
		}
		if ret[1], err = G.ApplyOp(dg, in...); err != nil {
			return nil, err
		}
	}
	if op.bn.Bias.Trainable() {
		if ret[0] != nil {
			// sum(g) per channel is a by-product of the dx op's pass
			db := &batchNormDGammaOp{opBase: opBase{name: op.name + ".dbeta", id: op.id}, fwd: op, afterDX: true, beta: true}
			if ret[2], err = G.ApplyOp(db, inputs[0], g, ret[0]); err != nil {
				return nil, err
			}
		} else {
			db := &channelSumOp{opBase: opBase{name: op.name + ".dbeta", id: op.id}, n: op.n, c: op.c, sig: newSig(tensor.Shape{op.c}, 4)}
			if ret[2], err = G.ApplyOp(db, g); err != nil {
				return nil, err
			}
		}
	}
	if op.hasRes && op.needDRes {
		ret[3] = g
	}
	return ret, nil
}

// sums returns per channel sum(g) and sum(g * xhat) for the last forward,
// in buf (2 * channels, allocated once by the caller's op).
func (op *batchNormOp) sums(x, g []float32, buf *[]float64) (sg, sgx []float64) {
	n, k, hw := op.n, op.c, op.hw
	if len(*buf) != 2*k {
		*buf = make([]float64, 2*k)
	}
	sg, sgx = (*buf)[:k], (*buf)[k:]
	kernels.ParallelFor(k, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			mean := float32(op.mean[c])
			var a, b float64
			for i := 0; i < n; i++ {
				l, h := (i*k+c)*hw, (i*k+c+1)*hw
				pa, pb := gradSums(x[l:h], g[l:h], mean)
				a += pa
				b += pb
			}
			sg[c], sgx[c] = a, b*op.invstd[c]
		}
	})
	return sg, sgx
}

// batchNormDXOp: dx = gamma * invstd * (g - mean(g) - xhat * mean(g*xhat)).
type batchNormDXOp struct {
	opBase
	sig
	fwd *batchNormOp
	buf []float64
}

func (op *batchNormDXOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *batchNormDXOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var x, g, gamma []float32
	err := unpack(op.name, in, &x, &g, &gamma)
	if err != nil {
		return nil, err
	}
	f := op.fwd
	sg, sgx := f.sums(x, g, &op.buf)
	f.dxSG, f.dxSGX = sg, sgx
	n, k, hw := f.n, f.c, f.hw
	cnt := float64(n * hw)
	if f.bn.Sync != nil {
		// dgamma and dbeta stay this rank's sums (the ranks' parameter
		// gradients are averaged afterwards); dx needs the sums of the
		// whole batch
		f.localSGX = append(f.localSGX[:0], sg...)
		f.localSGX = append(f.localSGX, sgx...)
		f.dxSG, f.dxSGX = f.localSGX[:k], f.localSGX[k:]
		if err := f.bn.Sync.AllreduceSumFloat64(op.buf); err != nil {
			return nil, fmt.Errorf("%s: %w", op.name, err)
		}
		cnt = f.cntAll
	}
	out := op.out(prealloc, f.shape)
	dx := out.Data().([]float32)
	kernels.ParallelFor(n*k, func(lo, hi int) {
		for nk := lo; nk < hi; nk++ {
			c := nk % k
			inv := f.invstd[c]
			a := float32(float64(gamma[c]) * inv) // d/dg
			mg := float32(sg[c] / cnt)            // mean(g)
			b := float32(sgx[c] / cnt * inv)      // mean(g*xhat) * invstd
			mean := float32(f.mean[c])
			l, h := nk*hw, (nk+1)*hw
			xs, gs, ds := x[l:h], g[l:h], dx[l:h]
			gs, ds = gs[:len(xs)], ds[:len(xs)]
			for j, v := range xs {
				ds[j] = a * (gs[j] - mg - (v-mean)*b)
			}
		}
	})
	return out, nil
}

// batchNormDGammaOp: dgamma = sum(g * xhat) per channel, or with beta
// dbeta = sum(g).
type batchNormDGammaOp struct {
	opBase
	fwd *batchNormOp
	buf []float64
	// afterDX: the third input is dx, so the dx op has run this pass and
	// left sum(g) and sum(g*xhat) in fwd.dxSG, fwd.dxSGX
	afterDX bool
	beta    bool
}

func (op *batchNormDGammaOp) Arity() int {
	if op.afterDX {
		return 3
	}
	return 2
}
func (op *batchNormDGammaOp) Type() hm.Type {
	if op.afterDX {
		return fnType(1, 4, 4, 4)
	}
	return fnType(1, 4, 4)
}
func (op *batchNormDGammaOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.fwd.c}, nil
}
func (op *batchNormDGammaOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *batchNormDGammaOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var x, g []float32
	err := unpack(op.name, in, &x, &g)
	if err != nil {
		return nil, err
	}
	var sg, sgx []float64
	if op.afterDX && len(op.fwd.dxSGX) == op.fwd.c && len(op.fwd.dxSG) == op.fwd.c {
		sg, sgx = op.fwd.dxSG, op.fwd.dxSGX
	} else {
		sg, sgx = op.fwd.sums(x, g, &op.buf)
	}
	src := sgx
	if op.beta {
		src = sg
	}
	out := op.out(prealloc, tensor.Shape{op.fwd.c})
	d := out.Data().([]float32)
	for c := range d {
		d[c] = float32(src[c])
	}
	return out, nil
}

// reluMaskOp: dy * (y > 0), the gradient through a fused ReLU.
type reluMaskOp struct {
	opBase
	sig
}

func (op *reluMaskOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op *reluMaskOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	var y, dy []float32
	err := unpack(op.name, in, &y, &dy)
	if err != nil {
		return nil, err
	}
	out := op.out(prealloc, op.shape)
	g := out.Data().([]float32)
	kernels.ParallelFor(len(y)/4096+1, func(lo, hi int) {
		l, h := lo*4096, hi*4096
		if h > len(y) {
			h = len(y)
		}
		ys := y[l:h]
		ds, gs := dy[l:h], g[l:h]
		ds, gs = ds[:len(ys)], gs[:len(ys)] // no bounds checks in the loop
		for i, v := range ys {
			d := ds[i]
			if !(v > 0) {
				d = 0
			}
			gs[i] = d
		}
	})
	return out, nil
}

// StatReducer sums per-channel statistics over the replicas of a
// data-parallel run, in place, identically on every replica (a
// dist.World). A BatchNorm whose FrozenBN has one (SyncBN) normalises with
// the mean and variance of the whole global batch and back-propagates
// through them, as torch.nn.SyncBatchNorm: the forward pass reduces the
// channel sums and element counts, then the centred sums of squares (two
// small allreduces, the same two-pass float64 arithmetic as one process);
// the dx op reduces sum(g) and sum(g*xhat). dgamma and dbeta stay
// per-replica sums: the trainer averages parameter gradients over the
// replicas afterwards, which gives the one-process gradient. Every replica
// must run the same BatchNorm ops in the same order (the same graph).
type StatReducer interface {
	AllreduceSumFloat64(buf []float64) error
}

// syncForward is the forward pass with batch statistics reduced over the
// replicas (SyncBN).
func (op *batchNormOp) syncForward(x, gamma, beta, res, y []float32) error {
	n, k, hw := op.n, op.c, op.hw
	if len(op.syncBuf) != k+1 {
		op.syncBuf = make([]float64, k+1)
	}
	buf := op.syncBuf
	kernels.ParallelFor(k, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var s float64
			for i := 0; i < n; i++ {
				for _, v := range x[(i*k+c)*hw : (i*k+c+1)*hw] {
					s += float64(v)
				}
			}
			buf[c] = s
		}
	})
	buf[k] = float64(n * hw)
	if err := op.bn.Sync.AllreduceSumFloat64(buf); err != nil {
		return fmt.Errorf("%s: %w", op.name, err)
	}
	cnt := buf[k]
	op.cntAll = cnt
	for c := 0; c < k; c++ {
		op.mean[c] = buf[c] / cnt
	}
	kernels.ParallelFor(k, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			mean := op.mean[c]
			var ss float64
			for i := 0; i < n; i++ {
				for _, v := range x[(i*k+c)*hw : (i*k+c+1)*hw] {
					d := float64(v) - mean
					ss += d * d
				}
			}
			buf[c] = ss
		}
	})
	buf[k] = 0
	if err := op.bn.Sync.AllreduceSumFloat64(buf); err != nil {
		return fmt.Errorf("%s: %w", op.name, err)
	}
	kernels.ParallelFor(k, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			op.normalize(c, op.mean[c], buf[c], cnt, x, gamma, beta, res, y)
		}
	})
	return nil
}
