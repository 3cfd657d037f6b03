package backbone

import (
	G "gorgonia.org/gorgonia"

	"github.com/skd-go/skd/layers"
)

// ConvUnit is one convolution with its batch norm (nil: none) and whether
// a ReLU follows.
type ConvUnit struct {
	Conv *layers.Conv2d
	BN   *layers.FrozenBN
	ReLU bool
}

// Block is one residual block: Convs applied in order to the block input,
// the block input (or Down applied to it) added before the last unit's
// ReLU.
type Block struct {
	Convs []ConvUnit
	// Down, when not nil, projects the block input for the residual sum
	// (no ReLU).
	Down *ConvUnit
}

// Pool is a max pooling.
type Pool struct{ Kernel, Stride, Pad int }

// Plan is the body as an explicit list of parts, in the order Forward
// applies them: the stem unit, the stem max pool, then the four stages
// whose outputs are C2..C5. Forward builds the graph from it and the ONNX
// exporter (package export) reads the same list, so the two cannot drift
// apart.
type Plan struct {
	Stem     ConvUnit
	StemPool Pool
	Stages   [4][]Block
}

// Plan returns the body's parts (sharing the registered parameters).
func (r *ResNet) Plan() Plan {
	p := Plan{Stem: ConvUnit{r.conv1, r.bn1, true}, StemPool: Pool{Kernel: 3, Stride: 2, Pad: 1}}
	for s, st := range r.stages {
		for _, blk := range st {
			var b Block
			if blk.down != nil {
				b.Down = &ConvUnit{blk.down, blk.downBN, false}
			}
			b.Convs = append(b.Convs, ConvUnit{blk.conv1, blk.bn1, true}, ConvUnit{blk.conv2, blk.bn2, true})
			if r.bottleneck {
				b.Convs = append(b.Convs, ConvUnit{blk.conv3, blk.bn3, true})
			}
			p.Stages[s] = append(p.Stages[s], b)
		}
	}
	return p
}

// Forward builds the body on x (N x 3 x H x W) and returns C2..C5.
func (r *ResNet) Forward(b *layers.Builder, x *G.Node) [4]*G.Node {
	p := r.Plan()
	var outs [4]*G.Node
	h := b.Conv(x, p.Stem.Conv, p.Stem.BN, nil, p.Stem.ReLU)
	h = b.MaxPool(h, p.StemPool.Kernel, p.StemPool.Stride, p.StemPool.Pad)
	for s, st := range p.Stages {
		for _, blk := range st {
			identity := h
			if blk.Down != nil {
				identity = b.Conv(h, blk.Down.Conv, blk.Down.BN, nil, blk.Down.ReLU)
			}
			t := h
			for i, u := range blk.Convs {
				var res *G.Node
				if i == len(blk.Convs)-1 {
					res = identity
				}
				t = b.Conv(t, u.Conv, u.BN, res, u.ReLU)
			}
			h = t
		}
		outs[s] = h
	}
	return outs
}
