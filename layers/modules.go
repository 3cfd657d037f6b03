package layers

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/kernels"
)

// Conv2d is a convolution layer's parameters and geometry; weights are
// K x C x KH x KW as in torchvision (`name.weight`, `name.bias`).
type Conv2d struct {
	Name            string
	Weight, Bias    *Param
	In, Out, KH, KW int
	// Stride, padding and dilation along the height and the width.
	StrideH, PadH, DilH int
	StrideW, PadW, DilW int
}

// NewConv2d registers a square-kernel convolution.
func NewConv2d(reg *Registry, name string, in, out, k, stride, pad, dil int, bias bool) *Conv2d {
	c := &Conv2d{Name: name, In: in, Out: out, KH: k, KW: k, StrideH: stride, PadH: pad, DilH: dil,
		StrideW: stride, PadW: pad, DilW: dil}
	c.Weight = reg.Add(name+".weight", out, in, k, k)
	if bias {
		c.Bias = reg.Add(name+".bias", out)
		c.Bias.NoDecay = true
	}
	return c
}

// Conv applies y = act(conv(x) [BN] [+ bias] [+ res]). bn and res may be
// nil. Gradients are only built for what needs them: the input when it
// depends on a trainable parameter, the weights when they are trainable.
func (b *Builder) Conv(x *G.Node, c *Conv2d, bn *BatchNorm2d, res *G.Node, relu bool) *G.Node {
	if b.err != nil || x == nil {
		return b.Fail(fmt.Errorf("%s: missing input", c.Name))
	}
	s := x.Shape()
	if len(s) != 4 || s[1] != c.In {
		return b.Fail(fmt.Errorf("%s: input shape %v, want N x %d x H x W", c.Name, s, c.In))
	}
	p := kernels.ConvParams{N: s[0], C: s[1], H: s[2], W: s[3], K: c.Out, KH: c.KH, KW: c.KW,
		StrideH: c.StrideH, StrideW: c.StrideW, PadH: c.PadH, PadW: c.PadW, DilH: c.DilH, DilW: c.DilW}
	if err := p.Validate(); err != nil {
		return b.Fail(fmt.Errorf("%s: %w", c.Name, err))
	}
	if bn != nil && bn.BatchStats && b.Training {
		return b.BatchNorm(b.Conv(x, c, nil, nil, false), bn, res, relu)
	}
	w := b.Param(c.Weight)
	op := &convOp{opBase: opBase{name: "conv(" + c.Name + ")", id: b.nextID()}, p: p, relu: relu, bn: bn, ws: b.WS}
	inputs := []*G.Node{x, w}
	op.needDX = b.NeedsGrad(x)
	op.needDW = c.Weight.Trainable()
	if c.Bias != nil {
		op.hasBias = true
		op.needDB = c.Bias.Trainable()
		inputs = append(inputs, b.Param(c.Bias))
	}
	if res != nil {
		oh, ow := p.OutHW()
		if rs := res.Shape(); len(rs) != 4 || rs[0] != p.N || rs[1] != p.K || rs[2] != oh || rs[3] != ow {
			return b.Fail(fmt.Errorf("%s: residual shape %v, want %v", c.Name, rs, []int{p.N, p.K, oh, ow}))
		}
		op.hasRes = true
		op.needDRes = b.NeedsGrad(res)
		inputs = append(inputs, res)
	}
	if bn != nil && (bn.Weight.Trainable() || bn.Bias.Trainable()) {
		op.hasAffine = true
		op.needDGamma, op.needDBeta = bn.Weight.Trainable(), bn.Bias.Trainable()
		inputs = append(inputs, b.Param(bn.Weight), b.Param(bn.Bias))
	}
	return b.apply(op, inputs...)
}

// MaxPool applies a k x k max pooling with the given stride and padding.
func (b *Builder) MaxPool(x *G.Node, k, stride, pad int) *G.Node {
	if b.err != nil || x == nil {
		return b.Fail(fmt.Errorf("maxpool: missing input"))
	}
	s := x.Shape()
	if len(s) != 4 {
		return b.Fail(fmt.Errorf("maxpool: input shape %v is not NCHW", s))
	}
	p := kernels.PoolParams{N: s[0], C: s[1], H: s[2], W: s[3], KH: k, KW: k, StrideH: stride, StrideW: stride, PadH: pad, PadW: pad}
	if oh, ow := p.OutHW(); oh <= 0 || ow <= 0 {
		return b.Fail(fmt.Errorf("maxpool: input %v too small", s))
	}
	return b.apply(&maxPoolOp{opBase: opBase{name: "maxpool", id: b.nextID()}, p: p, needDX: b.NeedsGrad(x)}, x)
}

// UpsampleNearest resizes x to h x w with PyTorch's 'nearest' rule.
func (b *Builder) UpsampleNearest(x *G.Node, h, w int) *G.Node {
	if b.err != nil || x == nil {
		return b.Fail(fmt.Errorf("upsample: missing input"))
	}
	s := x.Shape()
	if len(s) != 4 {
		return b.Fail(fmt.Errorf("upsample: input shape %v is not NCHW", s))
	}
	return b.apply(&upsampleOp{opBase: opBase{name: "upsample", id: b.nextID()}, sig: newSig(tensor.Shape{s[0], s[1], h, w}, 4), n: s[0], c: s[1], h: s[2], w: s[3], oh: h, ow: w, needDX: b.NeedsGrad(x)}, x)
}
