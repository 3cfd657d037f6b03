package kernels

import (
	"math/rand"
	"testing"
)

// convBenchLayer is one convolution with its buffers, run forward and
// backward (data and weight) in a benchmark.
type convBenchLayer struct {
	p                   ConvParams
	x, w, y, dy, dx, dw []float32
	ws                  ConvWorkspace
}

func newConvBenchLayer(r *rand.Rand, p ConvParams) *convBenchLayer {
	oh, ow := p.OutHW()
	return &convBenchLayer{
		p:  p,
		x:  randSlice(r, p.N*p.C*p.H*p.W),
		w:  randSlice(r, p.K*p.C*p.KH*p.KW),
		y:  make([]float32, p.N*p.K*oh*ow),
		dy: randSlice(r, p.N*p.K*oh*ow),
		dx: make([]float32, p.N*p.C*p.H*p.W),
		dw: make([]float32, p.K*p.C*p.KH*p.KW),
	}
}

func (l *convBenchLayer) fwd() { ConvForward(l.p, l.x, l.w, nil, l.y, &l.ws) }
func (l *convBenchLayer) bwd() {
	ConvBackwardData(l.p, l.dy, l.w, l.dx, &l.ws)
	ConvBackwardWeight(l.p, l.x, l.dy, l.dw, nil, &l.ws)
}

func conv2d(n, c, h, w, k, ksize, stride, pad int) ConvParams {
	return ConvParams{N: n, C: c, H: h, W: w, K: k, KH: ksize, KW: ksize, StrideH: stride, StrideW: stride, PadH: pad, PadW: pad, DilH: 1, DilW: 1}
}

func benchLayers(b *testing.B, layers []*convBenchLayer) {
	for _, l := range layers {
		l.fwd()
		l.bwd()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range layers {
			l.fwd()
		}
		for j := len(layers) - 1; j >= 0; j-- {
			layers[j].bwd()
		}
	}
}

// BenchmarkConv3x3_64_56 is one 3x3 convolution 64->64 at 56x56, batch 1,
// forward + backward (data and weight).
func BenchmarkConv3x3_64_56(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	benchLayers(b, []*convBenchLayer{newConvBenchLayer(r, conv2d(1, 64, 56, 56, 64, 3, 1, 1))})
}

// BenchmarkBottleneck is a ResNet-50 bottleneck's three convolutions (1x1
// 256->64, 3x3 64->64, 1x1 64->256 at 56x56, batch 1, no BN or ReLU),
// forward + backward (data and weight).
func BenchmarkBottleneck(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	benchLayers(b, []*convBenchLayer{
		newConvBenchLayer(r, conv2d(1, 256, 56, 56, 64, 1, 1, 0)),
		newConvBenchLayer(r, conv2d(1, 64, 56, 56, 64, 3, 1, 1)),
		newConvBenchLayer(r, conv2d(1, 64, 56, 56, 256, 1, 1, 0)),
	})
}

// BenchmarkConvParts times the pieces of the 3x3 64->64 56x56 convolution.
func BenchmarkConvParts(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	l := newConvBenchLayer(r, conv2d(1, 64, 56, 56, 64, 3, 1, 1))
	col := make([]float32, 64*9*56*56)
	parts := []struct {
		name string
		f    func()
	}{
		{"im2col", func() { im2col(l.p, l.x, col) }},
		{"col2im", func() { col2im(l.p, col, l.dx) }},
		{"forward", l.fwd},
		{"backwardData", func() { ConvBackwardData(l.p, l.dy, l.w, l.dx, &l.ws) }},
		{"backwardWeight", func() { ConvBackwardWeight(l.p, l.x, l.dy, l.dw, nil, &l.ws) }},
		{"backwardDataViaCol", func() {
			bwdDataViaCol = true
			ConvBackwardData(l.p, l.dy, l.w, l.dx, &l.ws)
			bwdDataViaCol = false
		}},
	}
	for _, pt := range parts {
		b.Run(pt.name, func(b *testing.B) {
			pt.f()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pt.f()
			}
		})
	}
}
