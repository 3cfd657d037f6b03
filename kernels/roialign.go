package kernels

import (
	"fmt"
	"math"
	"sync"
)

// RoIAlignParams describes a RoIAlign: each region of interest is cut into
// PooledH x PooledW bins, each bin averages bilinear samples of the feature
// map on a regular SamplingRatio x SamplingRatio grid (adaptive
// ceil(roi_size / pooled_size) per axis when SamplingRatio <= 0). Box
// coordinates are multiplied by SpatialScale (feature size / image size);
// Aligned shifts them by half a pixel (the "aligned=True" of torchvision and
// detectron2) and lets regions be smaller than one pixel.
type RoIAlignParams struct {
	PooledH, PooledW int
	SpatialScale     float32
	SamplingRatio    int
	Aligned          bool
}

// maxRoISamples bounds the bilinear samples of one region (adaptive
// sampling of a gigantic box would otherwise need unbounded scratch).
const maxRoISamples = 1 << 24

// roiSample is one bilinear sample of a region: the four neighbouring
// positions in a feature plane and their weights.
type roiSample struct {
	p1, p2, p3, p4 int32
	w1, w2, w3, w4 float32
}

// roiAxis is the precomputed interpolation of one coordinate.
type roiAxis struct {
	lo, hi int32
	l, h   float32 // weight of hi (the fraction) and of lo
	ok     bool
}

// roiScratch is one worker's scratch: the samples of one region, grouped
// by bin (bins[b]..bins[b+1] index the samples of bin b).
type roiScratch struct {
	ys, xs  []roiAxis
	samples []roiSample
	bins    []int32
}

var roiScratchPool = sync.Pool{New: func() any { return new(roiScratch) }}

// roiGeom is a region's geometry on the feature map.
type roiGeom struct {
	startH, startW, binH, binW float32
	gridH, gridW               int
	count                      float32 // max(gridH*gridW, 1)
}

// geometry computes a region's bins exactly as torchvision's CPU kernel
// (float32 arithmetic in the same order). empty reports a region without
// samples (non-positive or non-finite grid): its output is zero.
func (p RoIAlignParams) geometry(roi []float32) (g roiGeom, empty bool, err error) {
	var off float32
	if p.Aligned {
		off = 0.5
	}
	s := p.SpatialScale
	g.startW = float32(roi[1]*s) - off
	g.startH = float32(roi[2]*s) - off
	endW := float32(roi[3]*s) - off
	endH := float32(roi[4]*s) - off
	rw := endW - g.startW
	rh := endH - g.startH
	if !p.Aligned {
		// std::max(v, 1) keeps NaN
		if rw < 1 {
			rw = 1
		}
		if rh < 1 {
			rh = 1
		}
	}
	g.binH = rh / float32(p.PooledH)
	g.binW = rw / float32(p.PooledW)
	g.gridH, g.gridW = p.SamplingRatio, p.SamplingRatio
	if p.SamplingRatio <= 0 {
		ch := math.Ceil(float64(rh / float32(p.PooledH)))
		cw := math.Ceil(float64(rw / float32(p.PooledW)))
		if !(ch > 0 && cw > 0) || math.IsInf(ch, 0) || math.IsInf(cw, 0) {
			return g, true, nil
		}
		if ch*cw*float64(p.PooledH*p.PooledW) > maxRoISamples {
			return g, true, fmt.Errorf("region %v at scale %g needs %gx%g samples per bin (box too large for adaptive sampling)", roi[1:5], s, ch, cw)
		}
		g.gridH, g.gridW = int(ch), int(cw)
	}
	if p.SamplingRatio > 0 && p.SamplingRatio*p.SamplingRatio*p.PooledH*p.PooledW > maxRoISamples {
		return g, true, fmt.Errorf("sampling ratio %d too large", p.SamplingRatio)
	}
	g.count = float32(g.gridH * g.gridW)
	if !(g.startH == g.startH && g.startW == g.startW && g.binH == g.binH && g.binW == g.binW) {
		return g, true, nil // NaN coordinates: every sample is out of range
	}
	return g, false, nil
}

// axis precomputes the interpolation along one axis for the sample
// coordinate v in a dimension of the given size (torchvision's
// bilinear_interpolate rules: outside [-1, size] contributes nothing,
// negative clamps to 0, the last row/column clamps to itself).
func axis(v float32, size int) roiAxis {
	if !(v >= -1 && v <= float32(size)) {
		return roiAxis{}
	}
	if v <= 0 {
		v = 0
	}
	lo := int(v)
	hi := lo + 1
	if lo >= size-1 {
		lo, hi = size-1, size-1
		v = float32(lo)
	}
	l := v - float32(lo)
	return roiAxis{lo: int32(lo), hi: int32(hi), l: l, h: 1 - l, ok: true}
}

// prepare fills sc with the samples of region g on an h x w plane.
func (sc *roiScratch) prepare(p RoIAlignParams, g roiGeom, h, w int) {
	ph, pw := p.PooledH, p.PooledW
	ny, nx := ph*g.gridH, pw*g.gridW
	if cap(sc.ys) < ny {
		sc.ys = make([]roiAxis, ny)
	}
	if cap(sc.xs) < nx {
		sc.xs = make([]roiAxis, nx)
	}
	ys, xs := sc.ys[:ny], sc.xs[:nx]
	for i := 0; i < ph; i++ {
		base := g.startH + float32(float32(i)*g.binH)
		for iy := 0; iy < g.gridH; iy++ {
			d := float32(float32(iy)+0.5) * g.binH
			ys[i*g.gridH+iy] = axis(base+float32(d/float32(g.gridH)), h)
		}
	}
	for j := 0; j < pw; j++ {
		base := g.startW + float32(float32(j)*g.binW)
		for ix := 0; ix < g.gridW; ix++ {
			d := float32(float32(ix)+0.5) * g.binW
			xs[j*g.gridW+ix] = axis(base+float32(d/float32(g.gridW)), w)
		}
	}
	if cap(sc.samples) < ny*nx {
		sc.samples = make([]roiSample, ny*nx)
	}
	if cap(sc.bins) < ph*pw+1 {
		sc.bins = make([]int32, ph*pw+1)
	}
	samples, bins := sc.samples[:ny*nx], sc.bins[:ph*pw+1]
	k := 0
	for i := 0; i < ph; i++ {
		for j := 0; j < pw; j++ {
			bins[i*pw+j] = int32(k)
			for iy := 0; iy < g.gridH; iy++ {
				ay := ys[i*g.gridH+iy]
				if !ay.ok {
					continue
				}
				r0, r1 := ay.lo*int32(w), ay.hi*int32(w)
				for ix := 0; ix < g.gridW; ix++ {
					ax := xs[j*g.gridW+ix]
					if !ax.ok {
						continue
					}
					samples[k] = roiSample{
						p1: r0 + ax.lo, p2: r0 + ax.hi, p3: r1 + ax.lo, p4: r1 + ax.hi,
						w1: ay.h * ax.h, w2: ay.h * ax.l, w3: ay.l * ax.h, w4: ay.l * ax.l,
					}
					k++
				}
			}
		}
	}
	bins[ph*pw] = int32(k)
	sc.samples, sc.bins = samples, bins
}

// checkRoIAlign validates sizes and every row's batch index; it returns
// the number of regions.
func checkRoIAlign(fn string, p RoIAlignParams, feat []float32, n, c, h, w int, rois []float32, outLen int, rows []int32) (int, error) {
	if p.PooledH <= 0 || p.PooledW <= 0 {
		return 0, fmt.Errorf("kernels.%s: pooled size %dx%d must be positive", fn, p.PooledH, p.PooledW)
	}
	if n <= 0 || c <= 0 || h <= 0 || w <= 0 {
		return 0, fmt.Errorf("kernels.%s: feature shape [%d %d %d %d] must be positive", fn, n, c, h, w)
	}
	if int64(h)*int64(w) > math.MaxInt32 {
		return 0, fmt.Errorf("kernels.%s: feature plane %dx%d too large", fn, h, w)
	}
	if len(feat) != n*c*h*w {
		return 0, fmt.Errorf("kernels.%s: features have %d elements, want %d for [%d %d %d %d]", fn, len(feat), n*c*h*w, n, c, h, w)
	}
	if len(rois)%5 != 0 {
		return 0, fmt.Errorf("kernels.%s: rois have %d elements, not a multiple of 5 (batch index, x1, y1, x2, y2)", fn, len(rois))
	}
	k := len(rois) / 5
	if want := k * c * p.PooledH * p.PooledW; outLen != want {
		return 0, fmt.Errorf("kernels.%s: pooled tensor has %d elements, want %d for %d regions x %d channels x %dx%d", fn, outLen, want, k, c, p.PooledH, p.PooledW)
	}
	check := func(r int) error {
		b := rois[r*5]
		if b != b {
			return fmt.Errorf("kernels.%s: region %d has a NaN batch index", fn, r)
		}
		if b >= 0 && int(b) >= n {
			return fmt.Errorf("kernels.%s: region %d has batch index %g, batch has %d images", fn, r, b, n)
		}
		return nil
	}
	if rows == nil {
		for r := 0; r < k; r++ {
			if err := check(r); err != nil {
				return 0, err
			}
		}
	} else {
		for _, r := range rows {
			if r < 0 || int(r) >= k {
				return 0, fmt.Errorf("kernels.%s: row %d out of range [0, %d)", fn, r, k)
			}
			if err := check(int(r)); err != nil {
				return 0, err
			}
		}
	}
	return k, nil
}

// RoIAlignForward pools every region of rois (K x 5 rows: batch index, x1,
// y1, x2, y2 in image coordinates) from feat (N x C x H x W) into out
// (K x C x PooledH x PooledW), with the semantics of torchvision's CPU
// roi_align kernel. A row whose batch index is negative is padding: its
// output is zero. Samples outside the map contribute exactly zero (where
// torchvision multiplies feat[0] by a zero weight).
func RoIAlignForward(p RoIAlignParams, feat []float32, n, c, h, w int, rois []float32, out []float32) error {
	return RoIAlignForwardRows(p, feat, n, c, h, w, rois, nil, out)
}

// RoIAlignForwardRows is RoIAlignForward restricted to the listed rows of
// rois (nil: all rows); the other rows of out are left untouched.
// Regions are processed in parallel.
func RoIAlignForwardRows(p RoIAlignParams, feat []float32, n, c, h, w int, rois []float32, rows []int32, out []float32) error {
	k, err := checkRoIAlign("RoIAlignForward", p, feat, n, c, h, w, rois, len(out), rows)
	if err != nil {
		return err
	}
	nr := k
	if rows != nil {
		nr = len(rows)
	}
	// geometry errors are found before any output is written
	for i := 0; i < nr; i++ {
		r := rowAt(rows, i)
		if rois[r*5] >= 0 {
			if _, _, err := p.geometry(rois[r*5 : r*5+5]); err != nil {
				return fmt.Errorf("kernels.RoIAlignForward: region %d: %w", r, err)
			}
		}
	}
	hw := h * w
	bins := p.PooledH * p.PooledW
	parallelFor(nr, func(lo, hi int) {
		sc := roiScratchPool.Get().(*roiScratch)
		defer roiScratchPool.Put(sc)
		for i := lo; i < hi; i++ {
			r := rowAt(rows, i)
			roi := rois[r*5 : r*5+5]
			dst := out[r*c*bins : (r+1)*c*bins]
			g, empty, _ := p.geometry(roi)
			if roi[0] < 0 || empty {
				clear(dst)
				continue
			}
			sc.prepare(p, g, h, w)
			b := int(roi[0])
			src := feat[b*c*hw : (b+1)*c*hw]
			pooledPlanes(sc.samples, sc.bins, src, dst, c, hw, bins, g.count)
		}
	})
	return nil
}

func rowAt(rows []int32, i int) int {
	if rows == nil {
		return i
	}
	return int(rows[i])
}

// RoIAlignBackward accumulates into dfeat (N x C x H x W; callers zero it)
// the gradient of the pooled output given dout (K x C x PooledH x
// PooledW), as torchvision's CPU _roi_align_backward. Padding rows
// (negative batch index) give no gradient.
func RoIAlignBackward(p RoIAlignParams, dout []float32, n, c, h, w int, rois []float32, dfeat []float32) error {
	return RoIAlignBackwardRows(p, dout, n, c, h, w, rois, nil, dfeat)
}

// RoIAlignBackwardRows is RoIAlignBackward restricted to the listed rows
// of rois (nil: all rows). Channels are split between workers, so no two
// workers write the same feature plane; each worker recomputes the sample
// positions of every region (cheap next to the per-channel scatter).
func RoIAlignBackwardRows(p RoIAlignParams, dout []float32, n, c, h, w int, rois []float32, rows []int32, dfeat []float32) error {
	k, err := checkRoIAlign("RoIAlignBackward", p, dfeat, n, c, h, w, rois, len(dout), rows)
	if err != nil {
		return err
	}
	nr := k
	if rows != nil {
		nr = len(rows)
	}
	for i := 0; i < nr; i++ {
		r := rowAt(rows, i)
		if rois[r*5] >= 0 {
			if _, _, err := p.geometry(rois[r*5 : r*5+5]); err != nil {
				return fmt.Errorf("kernels.RoIAlignBackward: region %d: %w", r, err)
			}
		}
	}
	hw := h * w
	bins := p.PooledH * p.PooledW
	parallelFor(c, func(clo, chi int) {
		sc := roiScratchPool.Get().(*roiScratch)
		defer roiScratchPool.Put(sc)
		for i := 0; i < nr; i++ {
			r := rowAt(rows, i)
			roi := rois[r*5 : r*5+5]
			g, empty, _ := p.geometry(roi)
			if roi[0] < 0 || empty {
				continue
			}
			sc.prepare(p, g, h, w)
			b := int(roi[0])
			scatterPlanes(sc.samples, sc.bins, dfeat[(b*c+clo)*hw:(b*c+chi)*hw], dout[(r*c+clo)*bins:(r*c+chi)*bins], chi-clo, hw, bins, g.count)
		}
	})
	return nil
}

// pooledPlanes averages the samples of every bin over c planes of src
// (c x hw) into dst (c x bins). Four channels go together: the samples
// are loaded once for four independent sums (each channel's sum keeps
// torchvision's order of operations).
func pooledPlanes(samples []roiSample, binIdx []int32, src, dst []float32, c, hw, bins int, count float32) {
	ch := 0
	for ; ch+4 <= c; ch += 4 {
		f0 := src[ch*hw : (ch+1)*hw]
		f1 := src[(ch+1)*hw : (ch+2)*hw]
		f2 := src[(ch+2)*hw : (ch+3)*hw]
		f3 := src[(ch+3)*hw : (ch+4)*hw]
		o := dst[ch*bins : (ch+4)*bins]
		for bi := 0; bi < bins; bi++ {
			var v0, v1, v2, v3 float32
			ss := samples[binIdx[bi]:binIdx[bi+1]]
			for i := range ss {
				s := &ss[i]
				p1, p2, p3, p4 := s.p1, s.p2, s.p3, s.p4
				v0 += s.w1*f0[p1] + s.w2*f0[p2] + s.w3*f0[p3] + s.w4*f0[p4]
				v1 += s.w1*f1[p1] + s.w2*f1[p2] + s.w3*f1[p3] + s.w4*f1[p4]
				v2 += s.w1*f2[p1] + s.w2*f2[p2] + s.w3*f2[p3] + s.w4*f2[p4]
				v3 += s.w1*f3[p1] + s.w2*f3[p2] + s.w3*f3[p3] + s.w4*f3[p4]
			}
			o[bi] = v0 / count
			o[bins+bi] = v1 / count
			o[2*bins+bi] = v2 / count
			o[3*bins+bi] = v3 / count
		}
	}
	for ; ch < c; ch++ {
		f := src[ch*hw : (ch+1)*hw]
		o := dst[ch*bins : (ch+1)*bins]
		for bi := range o {
			var v float32
			ss := samples[binIdx[bi]:binIdx[bi+1]]
			for i := range ss {
				s := &ss[i]
				v += s.w1*f[s.p1] + s.w2*f[s.p2] + s.w3*f[s.p3] + s.w4*f[s.p4]
			}
			o[bi] = v / count
		}
	}
}

// scatterPlanes adds the gradient of the pooled values (dout: c x bins)
// to c planes of dfeat (c x hw), four channels at a time.
func scatterPlanes(samples []roiSample, binIdx []int32, dfeat, dout []float32, c, hw, bins int, count float32) {
	ch := 0
	for ; ch+4 <= c; ch += 4 {
		f0 := dfeat[ch*hw : (ch+1)*hw]
		f1 := dfeat[(ch+1)*hw : (ch+2)*hw]
		f2 := dfeat[(ch+2)*hw : (ch+3)*hw]
		f3 := dfeat[(ch+3)*hw : (ch+4)*hw]
		d := dout[ch*bins : (ch+4)*bins]
		for bi := 0; bi < bins; bi++ {
			g0, g1, g2, g3 := d[bi]/count, d[bins+bi]/count, d[2*bins+bi]/count, d[3*bins+bi]/count
			ss := samples[binIdx[bi]:binIdx[bi+1]]
			for i := range ss {
				s := &ss[i]
				p1, p2, p3, p4 := s.p1, s.p2, s.p3, s.p4
				w1, w2, w3, w4 := s.w1, s.w2, s.w3, s.w4
				f0[p1] += g0 * w1
				f0[p2] += g0 * w2
				f0[p3] += g0 * w3
				f0[p4] += g0 * w4
				f1[p1] += g1 * w1
				f1[p2] += g1 * w2
				f1[p3] += g1 * w3
				f1[p4] += g1 * w4
				f2[p1] += g2 * w1
				f2[p2] += g2 * w2
				f2[p3] += g2 * w3
				f2[p4] += g2 * w4
				f3[p1] += g3 * w1
				f3[p2] += g3 * w2
				f3[p3] += g3 * w3
				f3[p4] += g3 * w4
			}
		}
	}
	for ; ch < c; ch++ {
		f := dfeat[ch*hw : (ch+1)*hw]
		d := dout[ch*bins : (ch+1)*bins]
		for bi, gv := range d {
			if gv == 0 {
				continue
			}
			gv /= count
			ss := samples[binIdx[bi]:binIdx[bi+1]]
			for i := range ss {
				s := &ss[i]
				f[s.p1] += gv * s.w1
				f[s.p2] += gv * s.w2
				f[s.p3] += gv * s.w3
				f[s.p4] += gv * s.w4
			}
		}
	}
}
