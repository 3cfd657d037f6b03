package kernels

import "math"

// PoolParams describes a 2-D max pooling in NCHW layout.
type PoolParams struct {
	N, C, H, W       int
	KH, KW           int
	StrideH, StrideW int
	PadH, PadW       int
}

// OutHW returns the output size (floor mode, as PyTorch's default).
func (p PoolParams) OutHW() (int, int) {
	return (p.H+2*p.PadH-p.KH)/p.StrideH + 1, (p.W+2*p.PadW-p.KW)/p.StrideW + 1
}

// MaxPoolForward writes the window maxima of x into y. Padding counts as
// -Inf, as in PyTorch. NaN propagates (a NaN in a window wins).
func MaxPoolForward(p PoolParams, x, y []float32) {
	oh, ow := p.OutHW()
	parallelFor(p.N*p.C, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			xs := x[nc*p.H*p.W : (nc+1)*p.H*p.W]
			ys := y[nc*oh*ow : (nc+1)*oh*ow]
			for i := 0; i < oh; i++ {
				h0 := i*p.StrideH - p.PadH
				for j := 0; j < ow; j++ {
					w0 := j*p.StrideW - p.PadW
					m := float32(math.Inf(-1))
					for u := 0; u < p.KH; u++ {
						h := h0 + u
						if h < 0 || h >= p.H {
							continue
						}
						row := xs[h*p.W:]
						for v := 0; v < p.KW; v++ {
							w := w0 + v
							if w < 0 || w >= p.W {
								continue
							}
							if val := row[w]; val > m || val != val {
								m = val
							}
						}
					}
					ys[i*ow+j] = m
				}
			}
		}
	})
}

// MaxPoolBackward routes dy to the first position (row-major scan of the
// window) whose value equals the output maximum, as PyTorch's CPU kernel
// does. dx is overwritten.
func MaxPoolBackward(p PoolParams, x, y, dy, dx []float32) {
	oh, ow := p.OutHW()
	parallelFor(p.N*p.C, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			xs := x[nc*p.H*p.W : (nc+1)*p.H*p.W]
			dxs := dx[nc*p.H*p.W : (nc+1)*p.H*p.W]
			for i := range dxs {
				dxs[i] = 0
			}
			ys := y[nc*oh*ow : (nc+1)*oh*ow]
			dys := dy[nc*oh*ow : (nc+1)*oh*ow]
			for i := 0; i < oh; i++ {
				h0 := i*p.StrideH - p.PadH
				for j := 0; j < ow; j++ {
					w0 := j*p.StrideW - p.PadW
					m := ys[i*ow+j]
					idx := -1
				search:
					for u := 0; u < p.KH; u++ {
						h := h0 + u
						if h < 0 || h >= p.H {
							continue
						}
						for v := 0; v < p.KW; v++ {
							w := w0 + v
							if w < 0 || w >= p.W {
								continue
							}
							if val := xs[h*p.W+w]; val == m || (m != m && val != val) {
								idx = h*p.W + w
								break search
							}
						}
					}
					if idx >= 0 {
						dxs[idx] += dys[i*ow+j]
					}
				}
			}
		}
	})
}

// nearestIndex returns PyTorch's nearest source index for output index
// dst when resizing in -> out (mode='nearest', scale computed as in/out in
// float32 as upsample_nearest2d does when only the size is given).
func nearestIndex(dst, in, out int) int {
	scale := float32(in) / float32(out)
	s := int(float32(dst) * scale)
	if s > in-1 {
		s = in - 1
	}
	return s
}

// UpsampleNearestForward resizes x (N*C planes of h x w) to y (oh x ow)
// with PyTorch's 'nearest' rule.
func UpsampleNearestForward(nc, h, w, oh, ow int, x, y []float32) {
	cols := make([]int, ow)
	for j := range cols {
		cols[j] = nearestIndex(j, w, ow)
	}
	parallelFor(nc, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			xs := x[p*h*w : (p+1)*h*w]
			ys := y[p*oh*ow : (p+1)*oh*ow]
			for i := 0; i < oh; i++ {
				src := xs[nearestIndex(i, h, oh)*w:]
				dst := ys[i*ow : (i+1)*ow]
				for j, c := range cols {
					dst[j] = src[c]
				}
			}
		}
	})
}

// UpsampleNearestBackward sums dy over the output positions that copied
// each input position; dx is overwritten.
func UpsampleNearestBackward(nc, h, w, oh, ow int, dy, dx []float32) {
	cols := make([]int, ow)
	for j := range cols {
		cols[j] = nearestIndex(j, w, ow)
	}
	parallelFor(nc, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			dxs := dx[p*h*w : (p+1)*h*w]
			for i := range dxs {
				dxs[i] = 0
			}
			dys := dy[p*oh*ow : (p+1)*oh*ow]
			for i := 0; i < oh; i++ {
				dst := dxs[nearestIndex(i, h, oh)*w:]
				src := dys[i*ow : (i+1)*ow]
				for j, c := range cols {
					dst[c] += src[j]
				}
			}
		}
	})
}
