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
// every run (no per-run allocation once it has grown to size). It holds the
// backward-data pass's scratch: the flipped kernel (stride 1) or one band
// of the column matrix (other strides, at most 16 MB). A workspace must not
// be used by two calls at the same time; a nil *ConvWorkspace makes each
// call allocate its own scratch.
type ConvWorkspace struct {
	buf []float32
}

// Get returns a scratch slice of n floats (contents undefined).
func (ws *ConvWorkspace) Get(n int) []float32 {
	if ws == nil {
		return make([]float32, n)
	}
	if cap(ws.buf) < n {
		ws.buf = make([]float32, n)
	}
	return ws.buf[:n]
}

// Cap returns the workspace's size in floats.
func (ws *ConvWorkspace) Cap() int {
	if ws == nil {
		return 0
	}
	return cap(ws.buf)
}

// isPointwise reports a 1x1, stride-1, unpadded convolution: its input is
// already the GEMM operand, no im2col needed.
func (p ConvParams) isPointwise() bool {
	return p.KH == 1 && p.KW == 1 && p.StrideH == 1 && p.StrideW == 1 && p.PadH == 0 && p.PadW == 0
}

// mustConv panics with a clear message when p is malformed or a slice is
// too short for it (a programming error in the calling op).
func mustConv(fn string, p ConvParams, named ...any) {
	if err := p.Validate(); err != nil {
		panic(fmt.Sprintf("kernels.%s: %v", fn, err)) // programmer error: ops check shapes first
	}
	for i := 0; i+2 < len(named); i += 3 {
		name, x, need := named[i].(string), named[i+1].([]float32), named[i+2].(int)
		if len(x) < need {
			panic(fmt.Sprintf("kernels.%s: %s has %d elements, want %d for %+v", fn, name, len(x), need, p)) // programmer error
		}
	}
}

// ConvForward computes y = conv(x, w) + bias (bias may be nil).
// y must have N*K*OH*OW elements; it is overwritten.
//
// Each image is one GEMM y_n (K x OH*OW) = W (K x C*KH*KW) * col_n where
// col_n = im2col(x_n) is never materialised: the GEMM packs its cache-sized
// panels straight from x_n (1x1 stride-1 unpadded convolutions use x_n as
// the matrix). ws is not needed here (it may be nil).
func ConvForward(p ConvParams, x, w, bias, y []float32, ws *ConvWorkspace) {
	oh, ow := p.OutHW()
	ohw, ckk := oh*ow, p.C*p.KH*p.KW
	mustConv("ConvForward", p, "x", x, p.N*p.C*p.H*p.W, "w", w, p.K*ckk, "y", y, p.N*p.K*ohw)
	if bias != nil && len(bias) < p.K {
		panic(fmt.Sprintf("kernels.ConvForward: bias has %d elements, want %d", len(bias), p.K)) // programmer error
	}
	pointwise := p.isPointwise()
	for n := 0; n < p.N; n++ {
		xn := x[n*p.C*p.H*p.W : (n+1)*p.C*p.H*p.W]
		yn := y[n*p.K*ohw : (n+1)*p.K*ohw]
		if pointwise {
			Sgemm(false, false, p.K, ohw, ckk, 1, w, ckk, xn, ohw, 0, yn, ohw)
		} else {
			sgemmCol(false, p.K, ohw, ckk, w, ckk, newColSource(p, xn, false), 0, yn, ohw)
		}
		if bias != nil {
			for k := 0; k < p.K; k++ {
				b := bias[k]
				row := yn[k*ohw : (k+1)*ohw]
				for j := range row {
					row[j] += b
				}
			}
		}
	}
}

// ConvBackwardData computes dx = conv_transpose(dy, w); dx is overwritten.
//
// Stride-1 convolutions (the 3x3 convs of ResNet blocks, FPN and the RPN
// head) run as the forward convolution of dy with the flipped, transposed
// kernel: dx_n (C x H*W) = W' (C x K*KH*KW) * im2col'(dy_n), the im2col
// operand packed on the fly as in ConvForward. No column matrix, no col2im,
// and the only scratch is W' (the size of the weights): for a 3x3
// 256-channel conv at 200x304 the column matrix was 560 MB.
//
// Other strides run one GEMM dcol = W^T * dy_n per band of output rows
// into a bounded column buffer (at most colBandFloats values, or one output
// row) and col2im it into dx_n; 1x1 stride-1 unpadded convolutions write
// dx_n directly.
func ConvBackwardData(p ConvParams, dy, w, dx []float32, ws *ConvWorkspace) {
	oh, ow := p.OutHW()
	ohw, ckk := oh*ow, p.C*p.KH*p.KW
	chw := p.C * p.H * p.W
	mustConv("ConvBackwardData", p, "dy", dy, p.N*p.K*ohw, "w", w, p.K*ckk, "dx", dx, p.N*chw)
	if p.isPointwise() {
		for n := 0; n < p.N; n++ {
			Sgemm(true, false, ckk, ohw, p.K, 1, w, ckk, dy[n*p.K*ohw:(n+1)*p.K*ohw], ohw, 0, dx[n*chw:(n+1)*chw], ohw)
		}
		return
	}
	if q, ok := p.transposedForward(); ok && !bwdDataViaCol {
		kkk := p.K * p.KH * p.KW
		wf := ws.Get(p.C * kkk)
		flipKernel(p, w, wf)
		hw := p.H * p.W
		for n := 0; n < p.N; n++ {
			sgemmCol(false, p.C, hw, kkk, wf, kkk, newColSource(q, dy[n*p.K*ohw:(n+1)*p.K*ohw], false), 0, dx[n*chw:(n+1)*chw], hw)
		}
		return
	}
	band := max(1, min(oh, colBandFloats/(ckk*ow)))
	if bwdDataBandRows > 0 {
		band = min(oh, bwdDataBandRows)
	}
	col := ws.Get(ckk * band * ow)
	for n := 0; n < p.N; n++ {
		dyn := dy[n*p.K*ohw : (n+1)*p.K*ohw]
		dxn := dx[n*chw : (n+1)*chw]
		clear(dxn)
		for i0 := 0; i0 < oh; i0 += band {
			i1 := min(oh, i0+band)
			cols := (i1 - i0) * ow
			Sgemm(true, false, ckk, cols, p.K, 1, w, ckk, dyn[i0*ow:], ohw, 0, col, cols)
			col2imAdd(p, col[:ckk*cols], dxn, i0, i1)
		}
	}
}

// colBandFloats bounds the column buffer of the banded backward-data path
// (16 MB).
const colBandFloats = 4 << 20

// bwdDataViaCol forces the banded im2col path for stride-1 convolutions too,
// and bwdDataBandRows > 0 sets its band height (tests and A/B benchmarks).
var (
	bwdDataViaCol   = false
	bwdDataBandRows = 0
)

// transposedForward returns the forward convolution whose output is the
// data gradient of p when p has stride 1: input dy (K x OH x OW), K'=C
// outputs, padding dil*(k-1)-pad on each side (so that its output is H x W).
func (p ConvParams) transposedForward() (ConvParams, bool) {
	if p.StrideH != 1 || p.StrideW != 1 {
		return ConvParams{}, false
	}
	oh, ow := p.OutHW()
	q := ConvParams{
		N: 1, C: p.K, H: oh, W: ow, K: p.C, KH: p.KH, KW: p.KW,
		StrideH: 1, StrideW: 1,
		PadH: p.DilH*(p.KH-1) - p.PadH, PadW: p.DilW*(p.KW-1) - p.PadW,
		DilH: p.DilH, DilW: p.DilW,
	}
	if q.PadH < 0 || q.PadW < 0 {
		return ConvParams{}, false
	}
	if qh, qw := q.OutHW(); qh != p.H || qw != p.W {
		return ConvParams{}, false
	}
	return q, true
}

// flipKernel writes wf[c][k][u][v] = w[k][c][KH-1-u][KW-1-v] (C x K*KH*KW):
// the kernel of the transposed forward convolution.
func flipKernel(p ConvParams, w, wf []float32) {
	kk := p.KH * p.KW
	for k := 0; k < p.K; k++ {
		for c := 0; c < p.C; c++ {
			src := w[(k*p.C+c)*kk : (k*p.C+c+1)*kk]
			dst := wf[(c*p.K+k)*kk : (c*p.K+k+1)*kk]
			for i, v := range src {
				dst[kk-1-i] = v
			}
		}
	}
}

// ConvBackwardWeight computes dw (and db when non-nil) from x and dy;
// both are overwritten.
//
// dw (K x C*KH*KW) = sum over images of dy_n * col_n^T, with col_n^T
// packed on the fly from x_n like in ConvForward; db is the row sums of dy.
// ws is not needed here (it may be nil).
func ConvBackwardWeight(p ConvParams, x, dy, dw, db []float32, ws *ConvWorkspace) {
	oh, ow := p.OutHW()
	ohw, ckk := oh*ow, p.C*p.KH*p.KW
	chw := p.C * p.H * p.W
	mustConv("ConvBackwardWeight", p, "x", x, p.N*chw, "dy", dy, p.N*p.K*ohw, "dw", dw, p.K*ckk)
	if db != nil && len(db) < p.K {
		panic(fmt.Sprintf("kernels.ConvBackwardWeight: db has %d elements, want %d", len(db), p.K)) // programmer error
	}
	pointwise := p.isPointwise()
	if db != nil {
		clear(db[:p.K])
	}
	for n := 0; n < p.N; n++ {
		xn := x[n*chw : (n+1)*chw]
		dyn := dy[n*p.K*ohw : (n+1)*p.K*ohw]
		var beta float32
		if n > 0 {
			beta = 1
		}
		if pointwise {
			Sgemm(false, true, p.K, ckk, ohw, 1, dyn, ohw, xn, ohw, beta, dw, ckk)
		} else {
			sgemmCol(false, p.K, ckk, ohw, dyn, ohw, newColSource(p, xn, true), beta, dw, ckk)
		}
		if db != nil {
			for k := 0; k < p.K; k++ {
				var s float32
				for _, g := range dyn[k*ohw : (k+1)*ohw] {
					s += g
				}
				db[k] += s
			}
		}
	}
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
