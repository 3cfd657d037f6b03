package kd

import (
	"math"

	"github.com/skd-go/skd/kernels"
)

// One (n, c) plane of the SSIM loss on flat, padded layouts, so that each
// separable pass of the Gaussian window is a single kernels.FIR64 call
// over the whole plane (SIMD, no border branches):
//
//   - forward: the normalised maps are stored reflect-padded by p = K/2
//     on every side, (h+2p) x (w+2p) with row stride wp = w+2p; a
//     horizontal pass (taps 1 apart) then a vertical one (taps wp apart)
//     give the local means mu = G*v at stride wp. Outputs that would
//     straddle two rows land in the padding columns and are never read.
//   - backward: the gradients with respect to the local statistics sit in
//     the middle of a zero-padded (h+4p) x (w+4p) layout (stride wz); the
//     adjoint of "reflect-pad, filter rows, filter columns" is "filter
//     columns, filter rows" with the reversed window over the zero
//     padding (an (h+2p) x (w+2p) result for every padded position), then
//     fold: each reflected position adds its value to the position it
//     mirrors.
//
// Gaussian windows are symmetric (gaussian1D computes w[i] and w[K-1-i]
// from the same x^2), so the reversed window is the window itself.

// ssimScratch is one worker's plane-sized buffers. The row strides wp and
// wz are w+2p and w+4p rounded up to a multiple of 8; the columns beyond
// are never read for a kept value.
type ssimScratch struct {
	h, w, p, hp, wp, wz int

	px, py   []float64 // normalised student, teacher; reflect-padded, hp x wp
	prod     []float64 // a product of the two, same layout
	tmp      []float64 // the horizontal pass's output
	mux, muy []float64 // local statistics at stride wp (h rows)
	exx, eyy []float64
	exy      []float64
	gmu, gxx []float64 // dLoss/d(statistic), zero-padded, (h+4p) x wz
	gxy      []float64
	vb       []float64 // the adjoint vertical pass, hp x wz
	amu, axx []float64 // G^T of gmu, gxx, gxy: hp x wp at stride wz, folded
	axy      []float64 // into the h x w plane at offset (p, p)
}

// grow sizes the buffers for an h x w plane and window padding p.
func (sc *ssimScratch) grow(h, w, p int) {
	sc.h, sc.w, sc.p = h, w, p
	// row strides rounded up to whole 64-byte lines: with line-aligned
	// buffers (growF64) every vertical tap then loads aligned vectors
	sc.hp, sc.wp, sc.wz = h+2*p, (w+2*p+7)&^7, (w+4*p+7)&^7
	fwd := sc.hp * sc.wp
	bwd := (h + 4*p) * sc.wz
	for _, b := range []*[]float64{&sc.px, &sc.py, &sc.prod, &sc.tmp, &sc.mux, &sc.muy, &sc.exx, &sc.eyy, &sc.exy} {
		*b = growF64(*b, fwd)
	}
	for _, b := range []*[]float64{&sc.gmu, &sc.gxx, &sc.gxy, &sc.vb, &sc.amu, &sc.axx, &sc.axy} {
		*b = growF64(*b, bwd)
	}
}

// load writes (v - lo) * inv into dst's middle and fills its reflect
// padding (torch 'reflect': the edge is not repeated).
func (sc *ssimScratch) load(dst []float64, v []float32, lo, inv float64) {
	h, w, p, wp := sc.h, sc.w, sc.p, sc.wp
	for r := 0; r < h; r++ {
		row := dst[(r+p)*wp:][:wp]
		src := v[r*w:][:w]
		mid := row[p:][:w]
		for c, x := range src {
			mid[c] = (float64(x) - lo) * inv
		}
		for q := 0; q < p; q++ {
			row[q] = row[2*p-q]
			row[p+w+q] = row[p+w-2-q]
		}
	}
	for m := 0; m < p; m++ {
		copy(dst[m*wp:(m+1)*wp], dst[(2*p-m)*wp:])
		copy(dst[(p+h+m)*wp:(p+h+m+1)*wp], dst[(p+h-2-m)*wp:])
	}
}

// filter writes G*src (src reflect-padded, hp x wp) into dst at stride wp:
// dst[r*wp+c] for r < h, c < w.
func (sc *ssimScratch) filter(dst, src, kern []float64) {
	wp := sc.wp
	kernels.FIR64(sc.tmp[:(sc.hp-1)*wp+sc.w], src[:sc.hp*wp], 1, kern)
	kernels.FIR64(dst[:(sc.h-1)*wp+sc.w], sc.tmp[:sc.hp*wp], wp, kern)
}

// filterT writes G^T g (g zero-padded, (h+4p) x wz) into dst, folded: the
// h x w result at dst[(r+p)*wz + c+p].
func (sc *ssimScratch) filterT(dst, g, kern []float64) {
	h, w, p, hp, wz := sc.h, sc.w, sc.p, sc.hp, sc.wz
	wp := w + 2*p // the padded width (sc.wp may be more)
	kernels.FIR64(sc.vb[:hp*wz], g[:(h+4*p)*wz], wz, kern)
	kernels.FIR64(dst[:(hp-1)*wz+wp], sc.vb[:hp*wz], 1, kern)
	for m := 0; m < hp; m++ {
		row := dst[m*wz:][:wp]
		for q := 0; q < p; q++ {
			row[2*p-q] += row[q]
			row[p+w-2-q] += row[p+w+q]
		}
	}
	for m := 0; m < p; m++ {
		addRow(dst[(2*p-m)*wz+p:][:w], dst[m*wz+p:][:w])
		addRow(dst[(p+h-2-m)*wz+p:][:w], dst[(p+h+m)*wz+p:][:w])
	}
}

func addRow(dst, src []float64) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// stats computes the five local statistics of the loaded plane.
func (sc *ssimScratch) stats(kern []float64) {
	n := sc.hp * sc.wp
	px, py, pr := sc.px[:n], sc.py[:n], sc.prod[:n]
	sc.filter(sc.mux, px, kern)
	sc.filter(sc.muy, py, kern)
	for i, x := range px {
		pr[i] = x * x
	}
	sc.filter(sc.exx, pr, kern)
	for i, y := range py {
		pr[i] = y * y
	}
	sc.filter(sc.eyy, pr, kern)
	for i, x := range px {
		pr[i] = x * py[i]
	}
	sc.filter(sc.exy, pr, kern)
}

// plane computes one loaded plane's summed loss terms (over the kept
// region r0..r1 x c0..c1), its SSIM map into mo when non-nil, and when gp
// is non-nil the gradient with respect to the normalised student times
// inv (the first term of the normalisation's derivative) into gp; it
// returns the loss sum and the per-plane sums sum g (y - 1), sum g y of
// the gradient g with respect to the normalised student y.
func (s *SSIM) plane(sc *ssimScratch, kern []float64, r0, r1, c0, c1 int, gS, inv float64, mo []float64, gp []float32) (float64, float64, float64) {
	sc.stats(kern)
	need := gp != nil
	if need {
		n := (sc.h + 4*sc.p) * sc.wz
		clear(sc.gmu[:n])
		clear(sc.gxx[:n])
		clear(sc.gxy[:n])
	}
	loss := s.pointwise(sc, r0, r1, c0, c1, gS, mo, need)
	if !need {
		return loss, 0, 0
	}
	// dL/dxn = G^T gmu + 2 xn G^T gxx + tn G^T gxy
	sc.filterT(sc.amu, sc.gmu, kern)
	sc.filterT(sc.axx, sc.gxx, kern)
	sc.filterT(sc.axy, sc.gxy, kern)
	h, w, p, wp, wz := sc.h, sc.w, sc.p, sc.wp, sc.wz
	var s1, s2 float64
	for r := 0; r < h; r++ {
		xn, tn := sc.px[(r+p)*wp+p:][:w], sc.py[(r+p)*wp+p:][:w]
		amu, axx, axy := sc.amu[(r+p)*wz+p:][:w], sc.axx[(r+p)*wz+p:][:w], sc.axy[(r+p)*wz+p:][:w]
		g32 := gp[r*w:][:w]
		for c, x := range xn {
			g := amu[c] + 2*x*axx[c] + tn[c]*axy[c]
			s1 += g * (x - 1)
			s2 += g * x
			g32[c] = float32(g * inv)
		}
	}
	return loss, s1, s2
}

// pointwise evaluates the SSIM map on the kept region from the local
// statistics, returns the summed clamped loss terms, writes the map into
// mo when non-nil and, when need is set, gS times the derivatives of each
// position's term with respect to mu_x, E[x^2] and E[xy] (where the clamp
// passes the gradient) into gmu, gxx, gxy.
func (s *SSIM) pointwise(sc *ssimScratch, r0, r1, c0, c1 int, gS float64, mo []float64, need bool) float64 {
	wp, wz, p, n := sc.wp, sc.wz, sc.p, c1-c0
	full := s.cfg.Terms == "full"
	vc := newSSIMVecConsts(gS)
	var loss float64
	for r := r0; r < r1; r++ {
		i, j := r*wp+c0, (r+2*p)*wz+c0+2*p
		st := ssimRow{mux: sc.mux[i:][:n], muy: sc.muy[i:][:n], exx: sc.exx[i:][:n], eyy: sc.eyy[i:][:n], exy: sc.exy[i:][:n]}
		if mo != nil {
			st.mo = mo[(r-r0)*n:][:n]
		}
		if need {
			st.gmu, st.gxx, st.gxy = sc.gmu[j:][:n], sc.gxx[j:][:n], sc.gxy[j:][:n]
		}
		if full && mo == nil {
			loss += st.fullSIMD(&vc, gS, need)
		} else {
			loss += st.generic(s.cfg.Terms, gS, need)
		}
	}
	return loss
}

// ssimRow is one row of the kept region: the local statistics, the map
// (nil unless wanted) and the gradients with respect to mu_x, E[x^2] and
// E[xy] (nil without a gradient).
type ssimRow struct {
	mux, muy, exx, eyy, exy []float64
	mo, gmu, gxx, gxy       []float64
}

// clampLoss is the loss term (1 - v) / 2 clamped to [0, 1] and whether
// the clamp passes the gradient (torch's clamp backward is inclusive at
// both bounds).
func clampLoss(v float64) (float64, bool) {
	l := (1 - v) / 2
	switch {
	case l >= 0 && l <= 1:
		return l, true
	case l < 0:
		return 0, false
	case l > 1:
		return 1, false
	}
	return l, false // NaN: propagated, no gradient
}

// ssimVecConsts are ssimFullAVX2's constants, each broadcast to four
// lanes: C1, C2, eps, 1, 1/2, gS, -gS, 0.
type ssimVecConsts [8][4]float64

func newSSIMVecConsts(gS float64) (c ssimVecConsts) {
	for i, v := range [8]float64{ssimC1, ssimC2, ssimEps, 1, 0.5, gS, -gS, 0} {
		c[i] = [4]float64{v, v, v, v}
	}
	return c
}

// fullSIMD is full with the assembly kernel where it runs (all but the
// last len%4 positions; the same formulas, fused multiply-adds and four
// partial loss sums, so the last bits may differ); vc holds gS's
// constants.
func (st ssimRow) fullSIMD(vc *ssimVecConsts, gS float64, need bool) float64 {
	n := len(st.mux) &^ 3
	if !haveSSIMAsm || !kernels.AssemblyOn() || n == 0 {
		return st.full(gS, need)
	}
	var gmu, gxx, gxy *float64
	if need {
		gmu, gxx, gxy = &st.gmu[0], &st.gxx[0], &st.gxy[0]
		_, _, _ = st.gmu[n-1], st.gxx[n-1], st.gxy[n-1]
	}
	_, _, _, _ = st.muy[n-1], st.exx[n-1], st.eyy[n-1], st.exy[n-1]
	loss := ssimFullAVX2(vc, &st.mux[0], &st.muy[0], &st.exx[0], &st.eyy[0], &st.exy[0], gmu, gxx, gxy, n)
	if n == len(st.mux) {
		return loss
	}
	tail := ssimRow{mux: st.mux[n:], muy: st.muy[n:], exx: st.exx[n:], eyy: st.eyy[n:], exy: st.exy[n:]}
	if need {
		tail.gmu, tail.gxx, tail.gxy = st.gmu[n:], st.gxx[n:], st.gxy[n:]
	}
	return loss + tail.full(gS, need)
}

// full is generic specialised to terms "full" without a map (ssimTerm
// inlined, one
// reciprocal per position).
func (st ssimRow) full(gS float64, need bool) float64 {
	var loss float64
	mux, muy, exx, eyy, exy := st.mux, st.muy[:len(st.mux)], st.exx[:len(st.mux)], st.eyy[:len(st.mux)], st.exy[:len(st.mux)]
	for c, mx := range mux {
		my := muy[c]
		sx := exx[c] - mx*mx
		sy := eyy[c] - my*my
		sxy := exy[c] - mx*my
		a1 := 2*mx*my + ssimC1
		a2 := 2*sxy + ssimC2
		b1 := mx*mx + my*my + ssimC1
		b2 := sx + sy + ssimC2
		id := 1 / (b1*b2 + ssimEps)
		v := a1 * a2 * id
		l, pass := clampLoss(v)
		loss += l
		if need && pass {
			dMu := (2*my*a2 - v*2*mx*b2) * id
			dSx := -v * b1 * id
			dSxy := 2 * a1 * id
			st.gmu[c] = gS * (dMu - 2*mx*dSx - my*dSxy)
			st.gxx[c] = gS * dSx
			st.gxy[c] = gS * dSxy
		}
	}
	return loss
}

// generic handles every term set and the map through ssimTerm.
func (st ssimRow) generic(terms string, gS float64, need bool) float64 {
	var loss float64
	for c, mx := range st.mux {
		my := st.muy[c]
		sx := st.exx[c] - mx*mx
		sy := st.eyy[c] - my*my
		sxy := st.exy[c] - mx*my
		v, dMu, dSx, dSxy := ssimTerm(terms, mx, my, sx, sy, sxy)
		if st.mo != nil {
			st.mo[c] = v
		}
		l, pass := clampLoss(v)
		loss += l
		if need && pass {
			st.gmu[c] = gS * (dMu - 2*mx*dSx - my*dSxy)
			st.gxx[c] = gS * dSx
			st.gxy[c] = gS * dSxy
		}
	}
	return loss
}

// ssimTerm returns one position's S and its partial derivatives with
// respect to mu_x (at fixed variances), sigma_x^2 and sigma_xy.
func ssimTerm(terms string, mx, my, sx, sy, sxy float64) (v, dMu, dSx, dSxy float64) {
	switch terms {
	case "full":
		a1 := 2*mx*my + ssimC1
		a2 := 2*sxy + ssimC2
		b1 := mx*mx + my*my + ssimC1
		b2 := sx + sy + ssimC2
		den := b1*b2 + ssimEps
		v = a1 * a2 / den
		dMu = (2*my*a2 - v*2*mx*b2) / den
		dSx = -v * b1 / den
		dSxy = 2 * a1 / den
	case "cs":
		den := sx + sy + ssimC2 + ssimEps
		v = (2*sxy + ssimC2) / den
		dSx = -v / den
		dSxy = 2 / den
	case "s":
		px, py := max(sx, 0), max(sy, 0)
		q := math.Sqrt(px * py)
		den := q + ssimC3 + ssimEps
		v = (sxy + ssimC3) / den
		dSxy = 1 / den
		if sx > 0 && q > 0 {
			dSx = -v / den * py / (2 * q)
		}
	}
	return v, dMu, dSx, dSxy
}
