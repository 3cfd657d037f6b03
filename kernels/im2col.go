package kernels

// im2col and col2im for one image in CHW layout. The column matrix has
// C*KH*KW rows (row (c*KH+u)*KW+v) and OH*OW columns: entry (r, i*OW+j) is
// x[c, i*StrideH-PadH+u*DilH, j*StrideW-PadW+v*DilW], zero outside the
// image.

// colRange returns the output columns j in [lo, hi) whose input column
// j*stride - pad + off lies inside [0, w).
func colRange(ow, w, stride, pad, off int) (lo, hi int) {
	start := pad - off // need j*stride >= start
	if start > 0 {
		lo = (start + stride - 1) / stride
	}
	end := w + pad - off // need j*stride < end
	if end > 0 {
		hi = (end + stride - 1) / stride
	}
	lo = min(lo, ow)
	hi = max(lo, min(hi, ow))
	return lo, hi
}

// im2colMinWork is the column-matrix size under which im2col/col2im stay on
// the calling goroutine.
const im2colMinWork = 1 << 15

// im2col fills col (C*KH*KW x OH*OW) from one image x (C x H x W).
func im2col(p ConvParams, x, col []float32) {
	oh, ow := p.OutHW()
	ohw := oh * ow
	hw := p.H * p.W
	kk := p.KH * p.KW
	perChannel := func(c int) {
		xc := x[c*hw : (c+1)*hw]
		for u := 0; u < p.KH; u++ {
			for v := 0; v < p.KW; v++ {
				r := (c*p.KH+u)*p.KW + v
				dst := col[r*ohw : (r+1)*ohw]
				off := v * p.DilW
				jlo, jhi := colRange(ow, p.W, p.StrideW, p.PadW, off)
				for i := 0; i < oh; i++ {
					d := dst[i*ow : (i+1)*ow]
					hi := i*p.StrideH - p.PadH + u*p.DilH
					if hi < 0 || hi >= p.H {
						clear(d)
						continue
					}
					clear(d[:jlo])
					clear(d[jhi:])
					src := xc[hi*p.W : (hi+1)*p.W]
					base := jlo*p.StrideW - p.PadW + off
					if p.StrideW == 1 {
						copy(d[jlo:jhi], src[base:base+jhi-jlo])
						continue
					}
					for j := jlo; j < jhi; j++ {
						d[j] = src[base]
						base += p.StrideW
					}
				}
			}
		}
	}
	runChannels(p.C, p.C*kk*ohw, perChannel)
}

// col2im sets dx (C x H x W) to the sum of the column-matrix entries that
// map to each input pixel (the adjoint of im2col).
func col2im(p ConvParams, col, dx []float32) {
	oh, _ := p.OutHW()
	clear(dx[:p.C*p.H*p.W])
	col2imAdd(p, col, dx, 0, oh)
}

// col2imAdd adds to dx (C x H x W) the entries of the column matrix of
// output rows i0..i1-1 (col has C*KH*KW rows of (i1-i0)*OW columns).
func col2imAdd(p ConvParams, col, dx []float32, i0, i1 int) {
	_, ow := p.OutHW()
	cols := (i1 - i0) * ow
	hw := p.H * p.W
	kk := p.KH * p.KW
	perChannel := func(c int) {
		xc := dx[c*hw : (c+1)*hw]
		for u := 0; u < p.KH; u++ {
			for v := 0; v < p.KW; v++ {
				r := (c*p.KH+u)*p.KW + v
				src := col[r*cols : (r+1)*cols]
				off := v * p.DilW
				jlo, jhi := colRange(ow, p.W, p.StrideW, p.PadW, off)
				if jlo >= jhi {
					continue
				}
				for i := i0; i < i1; i++ {
					hi := i*p.StrideH - p.PadH + u*p.DilH
					if hi < 0 || hi >= p.H {
						continue
					}
					s := src[(i-i0)*ow+jlo : (i-i0)*ow+jhi]
					base := jlo*p.StrideW - p.PadW + off
					if p.StrideW == 1 {
						addVec(xc[hi*p.W+base:hi*p.W+base+len(s)], s)
						continue
					}
					d := xc[hi*p.W : (hi+1)*p.W]
					for _, g := range s {
						d[base] += g
						base += p.StrideW
					}
				}
			}
		}
	}
	runChannels(p.C, p.C*kk*cols, perChannel)
}

// runChannels runs f over channels 0..c-1, in parallel when the work is
// large enough to pay for it.
func runChannels(c, work int, f func(int)) {
	if work < im2colMinWork || c == 1 {
		for i := 0; i < c; i++ {
			f(i)
		}
		return
	}
	gemmParallel(c, f)
}

// addVec adds src[i] to dst[i] for i < len(src); replaced by a SIMD version
// where available.
var addVec = addVecGo

func addVecGo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}
