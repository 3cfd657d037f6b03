// Package fpn builds torchvision's FeaturePyramidNetwork (P2-P5 from
// C2-C5 with 1x1 laterals, nearest top-down sums and 3x3 outputs, plus P6 =
// max-pool(kernel 1, stride 2) of P5) with torchvision's parameter names.
package fpn

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"

	"github.com/skd-go/skd/layers"
)

// FPN is a registered feature pyramid.
type FPN struct {
	Inner, Layer []*layers.Conv2d
	OutChannels  int
}

// New registers an FPN over inputs with the given channel counts (C2..C5).
// Names follow torchvision 0.14: prefix+"inner_blocks.i.0.weight" and
// prefix+"layer_blocks.i.0.weight" (Conv2dNormActivation without norm).
func New(reg *layers.Registry, prefix string, inChannels []int, outChannels int) (*FPN, error) {
	if outChannels <= 0 || len(inChannels) == 0 {
		return nil, fmt.Errorf("fpn: need input channels and out_channels > 0")
	}
	f := &FPN{OutChannels: outChannels}
	for i, c := range inChannels {
		f.Inner = append(f.Inner, layers.NewConv2d(reg, fmt.Sprintf("%sinner_blocks.%d.0", prefix, i), c, outChannels, 1, 1, 0, 1, true))
		f.Layer = append(f.Layer, layers.NewConv2d(reg, fmt.Sprintf("%slayer_blocks.%d.0", prefix, i), outChannels, outChannels, 3, 1, 1, 1, true))
	}
	return f, nil
}

// Init fills weights as torchvision: kaiming_uniform_(a=1), bias 0.
func (f *FPN) Init(rng *rand.Rand) {
	for _, c := range append(append([]*layers.Conv2d{}, f.Inner...), f.Layer...) {
		layers.KaimingUniform(c.Weight, 1, rng)
		layers.Constant(c.Bias, 0)
	}
}

// Forward returns P2..P5 and P6 (len(inputs)+1 maps, finest first).
func (f *FPN) Forward(b *layers.Builder, feats []*G.Node) []*G.Node {
	n := len(feats)
	if n != len(f.Inner) {
		b.Fail(fmt.Errorf("fpn: %d inputs, built for %d", n, len(f.Inner)))
		return nil
	}
	outs := make([]*G.Node, n+1)
	last := b.Conv(feats[n-1], f.Inner[n-1], nil, nil, false)
	outs[n-1] = b.Conv(last, f.Layer[n-1], nil, nil, false)
	for i := n - 2; i >= 0; i-- {
		s := feats[i].Shape()
		if len(s) != 4 {
			b.Fail(fmt.Errorf("fpn: input %d has shape %v", i, s))
			return nil
		}
		top := b.UpsampleNearest(last, s[2], s[3])
		last = b.Conv(feats[i], f.Inner[i], nil, top, false)
		outs[i] = b.Conv(last, f.Layer[i], nil, nil, false)
	}
	outs[n] = b.MaxPool(outs[n-1], 1, 2, 0)
	return outs
}
