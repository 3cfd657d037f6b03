package kernels

import "fmt"

// ConvParams describes a 2-D convolution in NCHW layout without groups.
// Weights are K x C x KH x KW (torchvision layout).
type ConvParams struct {
	N, C, H, W       int // input
	K, KH, KW        int // output channels, kernel size
	StrideH, StrideW int
	PadH, PadW       int
	DilH, DilW       int
}

// OutHW returns the output spatial size.
func (p ConvParams) OutHW() (int, int) {
	oh := (p.H+2*p.PadH-p.DilH*(p.KH-1)-1)/p.StrideH + 1
	ow := (p.W+2*p.PadW-p.DilW*(p.KW-1)-1)/p.StrideW + 1
	return oh, ow
}

// Validate reports a malformed description.
func (p ConvParams) Validate() error {
	if p.N <= 0 || p.C <= 0 || p.H <= 0 || p.W <= 0 || p.K <= 0 || p.KH <= 0 || p.KW <= 0 {
		return fmt.Errorf("conv: non-positive size in %+v", p)
	}
	if p.StrideH <= 0 || p.StrideW <= 0 || p.DilH <= 0 || p.DilW <= 0 || p.PadH < 0 || p.PadW < 0 {
		return fmt.Errorf("conv: bad stride/dilation/padding in %+v", p)
	}
	if oh, ow := p.OutHW(); oh <= 0 || ow <= 0 {
		return fmt.Errorf("conv: input %dx%d too small for kernel %dx%d (pad %d,%d dil %d,%d)", p.H, p.W, p.KH, p.KW, p.PadH, p.PadW, p.DilH, p.DilW)
	}
	return nil
}

// ConvWorkspace is scratch memory owned by one compiled op and reused on
// every run (no per-run allocation once it has grown to size).
type ConvWorkspace struct {
	buf []float32
}

// Get returns a scratch slice of n floats (contents undefined).
func (ws *ConvWorkspace) Get(n int) []float32 {
	if cap(ws.buf) < n {
		ws.buf = make([]float32, n)
	}
	return ws.buf[:n]
}

// ConvForward computes y = conv(x, w) + bias (bias may be nil).
// y must have N*K*OH*OW elements; it is overwritten.
func ConvForward(p ConvParams, x, w, bias, y []float32, ws *ConvWorkspace) {
	convForwardNaive(p, x, w, bias, y)
}

// ConvBackwardData computes dx = conv_transpose(dy, w); dx is overwritten.
func ConvBackwardData(p ConvParams, dy, w, dx []float32, ws *ConvWorkspace) {
	convBackwardDataNaive(p, dy, w, dx)
}

// ConvBackwardWeight computes dw (and db when non-nil) from x and dy;
// both are overwritten.
func ConvBackwardWeight(p ConvParams, x, dy, dw, db []float32, ws *ConvWorkspace) {
	convBackwardWeightNaive(p, x, dy, dw, db)
}

func convForwardNaive(p ConvParams, x, w, bias, y []float32) {
	oh, ow := p.OutHW()
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var s float32
					if bias != nil {
						s = bias[k]
					}
					for c := 0; c < p.C; c++ {
						for u := 0; u < p.KH; u++ {
							hi := i*p.StrideH - p.PadH + u*p.DilH
							if hi < 0 || hi >= p.H {
								continue
							}
							for v := 0; v < p.KW; v++ {
								wi := j*p.StrideW - p.PadW + v*p.DilW
								if wi < 0 || wi >= p.W {
									continue
								}
								s += x[((n*p.C+c)*p.H+hi)*p.W+wi] * w[((k*p.C+c)*p.KH+u)*p.KW+v]
							}
						}
					}
					y[((n*p.K+k)*oh+i)*ow+j] = s
				}
			}
		}
	}
}

func convBackwardDataNaive(p ConvParams, dy, w, dx []float32) {
	oh, ow := p.OutHW()
	for i := range dx[:p.N*p.C*p.H*p.W] {
		dx[i] = 0
	}
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					g := dy[((n*p.K+k)*oh+i)*ow+j]
					for c := 0; c < p.C; c++ {
						for u := 0; u < p.KH; u++ {
							hi := i*p.StrideH - p.PadH + u*p.DilH
							if hi < 0 || hi >= p.H {
								continue
							}
							for v := 0; v < p.KW; v++ {
								wi := j*p.StrideW - p.PadW + v*p.DilW
								if wi < 0 || wi >= p.W {
									continue
								}
								dx[((n*p.C+c)*p.H+hi)*p.W+wi] += g * w[((k*p.C+c)*p.KH+u)*p.KW+v]
							}
						}
					}
				}
			}
		}
	}
}

func convBackwardWeightNaive(p ConvParams, x, dy, dw, db []float32) {
	oh, ow := p.OutHW()
	for i := range dw[:p.K*p.C*p.KH*p.KW] {
		dw[i] = 0
	}
	if db != nil {
		for i := range db[:p.K] {
			db[i] = 0
		}
	}
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					g := dy[((n*p.K+k)*oh+i)*ow+j]
					if db != nil {
						db[k] += g
					}
					for c := 0; c < p.C; c++ {
						for u := 0; u < p.KH; u++ {
							hi := i*p.StrideH - p.PadH + u*p.DilH
							if hi < 0 || hi >= p.H {
								continue
							}
							for v := 0; v < p.KW; v++ {
								wi := j*p.StrideW - p.PadW + v*p.DilW
								if wi < 0 || wi >= p.W {
									continue
								}
								dw[((k*p.C+c)*p.KH+u)*p.KW+v] += g * x[((n*p.C+c)*p.H+hi)*p.W+wi]
							}
						}
					}
				}
			}
		}
	}
}
