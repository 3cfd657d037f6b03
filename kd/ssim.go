package kd

import (
	"fmt"
	"math"
	"runtime"

	"github.com/skd-go/skd/kernels"
)

// SSIM constants of the paper (L = 1 after min-max normalisation) and
// kornia's denominator guard.
const (
	ssimC1  = 0.01 * 0.01 // (0.01 L)^2
	ssimC2  = 0.03 * 0.03 // (0.03 L)^2
	ssimC3  = ssimC2 / 2  // structure term's constant (Wang et al. 2004)
	ssimEps = 1e-12       // kornia ssim: num / (den + eps)
)

// SSIMConfig selects the SSIM loss variant. Zero fields take the defaults
// in brackets.
//
// The loss of one student/teacher level x, t of shape [N, C, H, W] is
//
//	psi(v)   min-max normalisation (Normalize)
//	S        = ssim_map(psi(x), psi(t)) per (n, c) plane, Gaussian window
//	L        = mean over every kept map position of clamp((1 - S) / 2, 0, 1)
//
// which is kornia.losses.ssim_loss(psi(x), psi(t), window, max_val=1,
// eps=1e-12, reduction='mean', padding) with kornia's filter2d reflect
// border, the paper's published implementation.
type SSIMConfig struct {
	// Window is the Gaussian window's odd side length [11].
	Window int
	// Sigma is the Gaussian's standard deviation [1.5]. The window is
	// normalised to sum 1 (kornia get_gaussian_kernel2d: the outer product
	// of two normalised 1-D kernels).
	Sigma float64
	// Padding is "same" [default]: local statistics are computed on the
	// map padded by reflection (torch/kornia 'reflect': d c b | a b c d |
	// c b a, the edge not repeated), the SSIM map has the input's size; or
	// "valid": the same map cropped by (window-1)/2 on every side (only
	// positions whose window lies inside the map).
	Padding string
	// Normalize is psi's granularity: "channel" [default] maps every
	// (n, c) plane to [0, 1] with its own min and max; "level" uses one
	// min and max per image over all its channels and positions; "none"
	// feeds the raw features. A constant group (max == min) maps to 0
	// everywhere and passes no gradient. Student and teacher are
	// normalised separately.
	Normalize string
	// Terms is which SSIM factors enter the loss (the paper's ablation):
	//   "full" [default]: S = l * cs, the published loss, with
	//     l  = (2 mu_s mu_t + C1) / (mu_s^2 + mu_t^2 + C1) (luminance),
	//     cs = (2 sigma_st + C2) / (sigma_s^2 + sigma_t^2 + C2)
	//     (contrast times structure with C3 = C2/2), computed as kornia
	//     does: S = num / (den + 1e-12) with num, den the products;
	//   "cs": S = (2 sigma_st + C2) / (sigma_s^2 + sigma_t^2 + C2 + 1e-12),
	//     contrast and structure without luminance;
	//   "s": S = (sigma_st + C3) / (sqrt(sigma_s^2+ sigma_t^2+) + C3 + 1e-12)
	//     with v+ = max(v, 0), structure only (the square root's derivative
	//     is taken as 0 where sigma_s^2+ sigma_t^2+ is 0).
	// Local statistics: mu = G*v, sigma_v^2 = G*(v^2) - mu_v^2,
	// sigma_st = G*(s t) - mu_s mu_t with G the Gaussian filter.
	Terms string
}

// withDefaults fills zero fields.
func (c SSIMConfig) withDefaults() SSIMConfig {
	if c.Window == 0 {
		c.Window = 11
	}
	if c.Sigma == 0 {
		c.Sigma = 1.5
	}
	if c.Padding == "" {
		c.Padding = "same"
	}
	if c.Normalize == "" {
		c.Normalize = "channel"
	}
	if c.Terms == "" {
		c.Terms = "full"
	}
	return c
}

func (c SSIMConfig) validate() error {
	if c.Window < 1 || c.Window%2 == 0 {
		return fmt.Errorf("ssim: window %d, want an odd size >= 1", c.Window)
	}
	if !(c.Sigma > 0) || math.IsInf(c.Sigma, 1) {
		return fmt.Errorf("ssim: sigma %v, want a finite value > 0", c.Sigma)
	}
	switch c.Padding {
	case "same", "valid":
	default:
		return fmt.Errorf("ssim: padding %q, want \"same\" or \"valid\"", c.Padding)
	}
	switch c.Normalize {
	case "channel", "level", "none":
	default:
		return fmt.Errorf("ssim: normalize %q, want \"channel\", \"level\" or \"none\"", c.Normalize)
	}
	switch c.Terms {
	case "full", "cs", "s":
	default:
		return fmt.Errorf("ssim: terms %q, want \"full\", \"cs\" or \"s\"", c.Terms)
	}
	return nil
}

// EffectiveWindow returns the window side used on an h x w map (the
// small-map rule). The configured window is kept whenever it fits;
// otherwise it shrinks, with the same sigma, re-normalised to sum 1, to
//
//   - "same": the largest odd size whose reflect padding (window-1)/2 is
//     at most min(h, w) - 1, i.e. 2 min(h, w) - 1 (torch's reflect pad
//     needs pad < size). An 11 window therefore runs unchanged on maps of
//     at least 6 x 6 (the P6 map of a 192-pixel side); a 4 x 5 map gets 7,
//     a 2 x 3 map 3, a map with a side of 1 gets 1 (pointwise statistics:
//     zero variances, so cs = 1 and only luminance remains).
//   - "valid": the largest odd size <= min(h, w), so that the cropped map
//     keeps at least one row and column.
func (c SSIMConfig) EffectiveWindow(h, w int) int {
	c = c.withDefaults()
	m := min(h, w)
	var kmax int
	if c.Padding == "valid" {
		kmax = m
		if kmax%2 == 0 {
			kmax--
		}
	} else {
		kmax = 2*m - 1
	}
	if kmax < 1 {
		kmax = 1
	}
	return min(c.Window, kmax)
}

// gaussian1D returns kornia's normalised 1-D Gaussian of odd size k.
func gaussian1D(k int, sigma float64) []float64 {
	w := make([]float64, k)
	var s float64
	for i := range w {
		x := float64(i - k/2)
		w[i] = math.Exp(-x * x / (2 * sigma * sigma))
		s += w[i]
	}
	for i := range w {
		w[i] /= s
	}
	return w
}

// SSIM computes the SSIM loss and its gradient with respect to the
// student. It owns its scratch memory (one set per concurrent worker,
// grown to the largest plane seen), so repeated calls on the same shape
// allocate nothing but the goroutines of kernels.ParallelFor. An SSIM is
// not safe for concurrent use.
type SSIM struct {
	cfg  SSIMConfig
	free chan *ssimScratch // idle worker scratch sets
	kern map[int][]float64 // window size -> 1-D kernel

	planeLoss, s1, s2 []float64 // per plane
	xlo, xinv         []float64 // per normalisation group
	tlo, tinv         []float64
	xhi               []float64
	nmin, nmax        []int32
}

// ssimScratch is one worker's plane-sized buffers.
type ssimScratch struct {
	xn, tn, p, tmp         []float64
	mux, muy, exx, eyy, ex []float64
	gmu, gxx, gxy, acc     []float64
}

// NewSSIM returns an SSIM loss for the configuration (zero fields take
// their defaults).
func NewSSIM(cfg SSIMConfig) (*SSIM, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	nw := runtime.GOMAXPROCS(0)
	s := &SSIM{cfg: cfg, free: make(chan *ssimScratch, nw), kern: map[int][]float64{}}
	for i := 0; i < nw; i++ {
		s.free <- &ssimScratch{}
	}
	return s, nil
}

// Config returns the configuration with defaults filled in.
func (s *SSIM) Config() SSIMConfig { return s.cfg }

func (sc *ssimScratch) grow(n int) {
	if cap(sc.xn) >= n {
		sc.xn, sc.tn, sc.p, sc.tmp = sc.xn[:n], sc.tn[:n], sc.p[:n], sc.tmp[:n]
		sc.mux, sc.muy, sc.exx, sc.eyy, sc.ex = sc.mux[:n], sc.muy[:n], sc.exx[:n], sc.eyy[:n], sc.ex[:n]
		sc.gmu, sc.gxx, sc.gxy, sc.acc = sc.gmu[:n], sc.gxx[:n], sc.gxy[:n], sc.acc[:n]
		return
	}
	buf := make([]float64, 14*n)
	take := func() []float64 { b := buf[:n:n]; buf = buf[n:]; return b }
	sc.xn, sc.tn, sc.p, sc.tmp = take(), take(), take(), take()
	sc.mux, sc.muy, sc.exx, sc.eyy, sc.ex = take(), take(), take(), take(), take()
	sc.gmu, sc.gxx, sc.gxy, sc.acc = take(), take(), take(), take()
}

func checkShape(name string, shape [4]int, x, t []float32) error {
	for _, d := range shape {
		if d < 1 {
			return fmt.Errorf("%s: shape %v has an empty dimension", name, shape)
		}
	}
	n := shape[0] * shape[1] * shape[2] * shape[3]
	if len(x) != n {
		return fmt.Errorf("%s: student has %d values, shape %v needs %d", name, len(x), shape, n)
	}
	if len(t) != n {
		return fmt.Errorf("%s: teacher has %d values, shape %v needs %d", name, len(t), shape, n)
	}
	return nil
}

func (s *SSIM) kernel(k int) []float64 {
	w, ok := s.kern[k]
	if !ok {
		w = gaussian1D(k, s.cfg.Sigma)
		s.kern[k] = w
	}
	return w
}

func growF64(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}

func growI32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

// groups returns the number of normalisation groups and planes per group.
func (s *SSIM) groups(shape [4]int) (int, int) {
	switch s.cfg.Normalize {
	case "level":
		return shape[0], shape[1]
	default:
		return shape[0] * shape[1], 1
	}
}

// minMax computes each group's minimum, 1/(max-min) (0 for a constant
// group) and, when counts is set, how many elements tie at the minimum
// and the maximum (torch's min/max gradients are shared evenly by ties).
func minMax(v []float32, groups, gsize int, lo, inv, hi []float64, nmin, nmax []int32) {
	kernels.ParallelFor(groups, func(a, b int) {
		for g := a; g < b; g++ {
			d := v[g*gsize : (g+1)*gsize]
			mn, mx := d[0], d[0]
			for _, x := range d {
				if x < mn {
					mn = x
				}
				if x > mx {
					mx = x
				}
			}
			lo[g] = float64(mn)
			if mx > mn {
				inv[g] = 1 / (float64(mx) - float64(mn))
			} else {
				inv[g] = 0
			}
			if hi != nil {
				hi[g] = float64(mx)
				var cmn, cmx int32
				for _, x := range d {
					if x == mn {
						cmn++
					}
					if x == mx {
						cmx++
					}
				}
				nmin[g], nmax[g] = cmn, cmx
			}
		}
	})
}

// Loss returns the SSIM loss of student x against teacher t (both NCHW of
// the given shape) and, when grad is non-nil, writes dLoss/dx into grad
// (len(grad) must equal len(x)).
func (s *SSIM) Loss(x, t []float32, shape [4]int, grad []float32) (float64, error) {
	return s.run(x, t, shape, grad, nil)
}

// Map returns the SSIM map (the S of SSIMConfig, before the loss's clamp)
// of every (n, c) plane after normalisation, NCHW; with "valid" padding
// each plane is the cropped (H-2p) x (W-2p) map.
func (s *SSIM) Map(x, t []float32, shape [4]int) ([]float64, error) {
	h, w := shape[2], shape[3]
	k := s.cfg.EffectiveWindow(h, w)
	oh, ow := h, w
	if s.cfg.Padding == "valid" {
		oh, ow = h-(k-1), w-(k-1)
	}
	out := make([]float64, shape[0]*shape[1]*oh*ow)
	_, err := s.run(x, t, shape, nil, out)
	return out, err
}

func (s *SSIM) run(x, t []float32, shape [4]int, grad []float32, mapOut []float64) (float64, error) {
	if err := checkShape("ssim", shape, x, t); err != nil {
		return 0, err
	}
	if grad != nil && len(grad) != len(x) {
		return 0, fmt.Errorf("ssim: gradient buffer has %d values, want %d", len(grad), len(x))
	}
	n, c, h, w := shape[0], shape[1], shape[2], shape[3]
	hw := h * w
	planes := n * c
	k := s.cfg.EffectiveWindow(h, w)
	kern := s.kernel(k)
	pad := k / 2
	r0, r1, c0, c1 := 0, h, 0, w
	if s.cfg.Padding == "valid" {
		r0, r1, c0, c1 = pad, h-pad, pad, w-pad
	}
	count := float64(planes * (r1 - r0) * (c1 - c0))

	ng, gsize := s.groups(shape)
	norm := s.cfg.Normalize != "none"
	s.planeLoss = growF64(s.planeLoss, planes)
	s.s1 = growF64(s.s1, planes)
	s.s2 = growF64(s.s2, planes)
	if norm {
		s.xlo, s.xinv, s.xhi = growF64(s.xlo, ng), growF64(s.xinv, ng), growF64(s.xhi, ng)
		s.tlo, s.tinv = growF64(s.tlo, ng), growF64(s.tinv, ng)
		s.nmin, s.nmax = growI32(s.nmin, ng), growI32(s.nmax, ng)
		var hi []float64
		var nmn, nmx []int32
		if grad != nil {
			hi, nmn, nmx = s.xhi, s.nmin, s.nmax
		}
		minMax(x, ng, gsize*hw, s.xlo, s.xinv, hi, nmn, nmx)
		minMax(t, ng, gsize*hw, s.tlo, s.tinv, nil, nil, nil)
	}
	// dLoss/dS where the clamp passes the gradient (torch's clamp backward
	// is inclusive at both bounds).
	gS := -0.5 / count
	kernels.ParallelFor(planes, func(a, b int) {
		sc := <-s.free
		defer func() { s.free <- sc }()
		sc.grow(hw)
		for pl := a; pl < b; pl++ {
			xlo, xinv, tlo, tinv := 0.0, 1.0, 0.0, 1.0
			if norm {
				g := pl / gsize
				xlo, xinv, tlo, tinv = s.xlo[g], s.xinv[g], s.tlo[g], s.tinv[g]
			}
			xs, ts := x[pl*hw:(pl+1)*hw], t[pl*hw:(pl+1)*hw]
			for i := range xs {
				sc.xn[i] = (float64(xs[i]) - xlo) * xinv
				sc.tn[i] = (float64(ts[i]) - tlo) * tinv
			}
			var mo []float64
			if mapOut != nil {
				mo = mapOut[pl*(r1-r0)*(c1-c0) : (pl+1)*(r1-r0)*(c1-c0)]
			}
			var gp []float32
			if grad != nil {
				gp = grad[pl*hw : (pl+1)*hw]
			}
			s.planeLoss[pl], s.s1[pl], s.s2[pl] = s.plane(sc, h, w, kern, r0, r1, c0, c1, gS, xinv, mo, gp)
		}
	})
	var loss float64
	for _, v := range s.planeLoss {
		loss += v
	}
	loss /= count
	if grad != nil && norm {
		s.normCorrections(x, grad, ng, gsize*hw, gsize)
	}
	return loss, nil
}

// normCorrections adds the min and max terms of the normalisation's
// derivative: with y = (x - m) / r, r = M - m and upstream g,
//
//	dL/dx_j = g_j / r + [j argmin] sum_i g_i (y_i - 1) / r - [j argmax] sum_i g_i y_i / r
//
// (the first term is already in grad; the sums are per plane in s1, s2;
// tied extrema share their term evenly, as torch's amin/amax do).
func (s *SSIM) normCorrections(x, grad []float32, ng, glen, gsize int) {
	kernels.ParallelFor(ng, func(a, b int) {
		for g := a; g < b; g++ {
			inv := s.xinv[g]
			if inv == 0 {
				continue // constant group: zero gradient (already written)
			}
			var s1, s2 float64
			for p := g * gsize; p < (g+1)*gsize; p++ {
				s1 += s.s1[p]
				s2 += s.s2[p]
			}
			dmin := float32(s1 * inv / float64(s.nmin[g]))
			dmax := float32(-s2 * inv / float64(s.nmax[g]))
			mn, mx := float32(s.xlo[g]), float32(s.xhi[g])
			xs, gs := x[g*glen:(g+1)*glen], grad[g*glen:(g+1)*glen]
			for i, v := range xs {
				if v == mn {
					gs[i] += dmin
				}
				if v == mx {
					gs[i] += dmax
				}
			}
		}
	})
}

// plane computes one plane's summed loss terms (over the kept region),
// its SSIM map into mo when non-nil, and when gp is non-nil the gradient
// with respect to the normalised student times inv (the first term of
// the normalisation's derivative) into gp; it returns the loss sum and
// the per-plane sums sum g (y - 1), sum g y of the gradient g with
// respect to the normalised student y.
func (s *SSIM) plane(sc *ssimScratch, h, w int, kern []float64, r0, r1, c0, c1 int, gS, inv float64, mo []float64, gp []float32) (float64, float64, float64) {
	xn, tn := sc.xn, sc.tn
	filter := func(dst, src []float64) {
		hpass(sc.tmp, src, h, w, kern)
		vpass(dst, sc.tmp, h, w, kern)
	}
	filter(sc.mux, xn)
	filter(sc.muy, tn)
	for i := range xn {
		sc.p[i] = xn[i] * xn[i]
	}
	filter(sc.exx, sc.p)
	for i := range xn {
		sc.p[i] = tn[i] * tn[i]
	}
	filter(sc.eyy, sc.p)
	for i := range xn {
		sc.p[i] = xn[i] * tn[i]
	}
	filter(sc.ex, sc.p)

	terms := s.cfg.Terms
	need := gp != nil
	if need {
		clear(sc.gmu)
		clear(sc.gxx)
		clear(sc.gxy)
	}
	var loss float64
	mi := 0
	for r := r0; r < r1; r++ {
		for cc := c0; cc < c1; cc++ {
			i := r*w + cc
			mx, my := sc.mux[i], sc.muy[i]
			sx := sc.exx[i] - mx*mx
			sy := sc.eyy[i] - my*my
			sxy := sc.ex[i] - mx*my
			var v, dMu, dSx, dSxy float64
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
			if mo != nil {
				mo[mi] = v
				mi++
			}
			l := (1 - v) / 2
			pass := l >= 0 && l <= 1
			loss += min(max(l, 0), 1)
			if need && pass {
				sc.gmu[i] = gS * (dMu - 2*mx*dSx - my*dSxy)
				sc.gxx[i] = gS * dSx
				sc.gxy[i] = gS * dSxy
			}
		}
	}
	if !need {
		return loss, 0, 0
	}
	// dL/dxn = G^T gmu + 2 xn G^T gxx + tn G^T gxy
	filterT := func(dst, src []float64) {
		vpassT(sc.tmp, src, h, w, kern)
		hpassT(dst, sc.tmp, h, w, kern)
	}
	filterT(sc.acc, sc.gmu)
	filterT(sc.p, sc.gxx)
	for i := range sc.acc {
		sc.acc[i] += 2 * xn[i] * sc.p[i]
	}
	filterT(sc.p, sc.gxy)
	var s1, s2 float64
	for i := range sc.acc {
		g := sc.acc[i] + tn[i]*sc.p[i]
		s1 += g * (xn[i] - 1)
		s2 += g * xn[i]
		gp[i] = float32(g * inv)
	}
	return loss, s1, s2
}

// refl is torch's reflect index for i in [-(n-1), 2n-2].
func refl(i, n int) int {
	if i < 0 {
		return -i
	}
	if i >= n {
		return 2*(n-1) - i
	}
	return i
}

// The filters below use the window's symmetry (w[k] == w[K-1-k], exact
// by construction) and run as row-wise multiply-adds over whole row
// segments, which pipeline far better than one dot product per output.

// hpass filters every row: dst[r][j] = sum_k w[k] src[r][refl(j+k-pad)].
func hpass(dst, src []float64, h, wd int, w []float64) {
	pad := len(w) / 2
	lo, hi := pad, wd-pad // outputs whose window lies inside the row
	if hi < lo {
		lo, hi = wd, wd
	}
	for r := 0; r < h; r++ {
		s := src[r*wd : (r+1)*wd]
		d := dst[r*wd : (r+1)*wd]
		if hi > lo {
			dd := d[lo:hi]
			wc := w[pad]
			sc := s[lo:hi]
			for j := range dd {
				dd[j] = wc * sc[j]
			}
			for k := 0; k < pad; k++ {
				wk := w[k]
				a := s[lo-pad+k:][:len(dd)]
				b := s[lo+pad-k:][:len(dd)]
				for j := range dd {
					dd[j] += wk * (a[j] + b[j])
				}
			}
		}
		for j := 0; j < wd; j++ {
			if j == lo {
				j = hi
				if j >= wd {
					break
				}
			}
			var acc float64
			for k, wk := range w {
				acc += wk * s[refl(j+k-pad, wd)]
			}
			d[j] = acc
		}
	}
}

// vpass filters every column: dst[r] = sum_k w[k] src[refl(r+k-pad)].
func vpass(dst, src []float64, h, wd int, w []float64) {
	pad := len(w) / 2
	for r := 0; r < h; r++ {
		d := dst[r*wd : (r+1)*wd]
		wc := w[pad]
		c := src[r*wd:][:len(d)]
		for j := range d {
			d[j] = wc * c[j]
		}
		for k := 0; k < pad; k++ {
			wk := w[k]
			a := src[refl(r+k-pad, h)*wd:][:len(d)]
			b := src[refl(r+pad-k, h)*wd:][:len(d)]
			for j := range d {
				d[j] += wk * (a[j] + b[j])
			}
		}
	}
}

// vpassT is vpass's adjoint: dst[refl(r+k-pad)] += w[k] src[r].
func vpassT(dst, src []float64, h, wd int, w []float64) {
	pad := len(w) / 2
	clear(dst[:h*wd])
	for r := 0; r < h; r++ {
		s := src[r*wd : (r+1)*wd]
		for k, wk := range w {
			d := dst[refl(r+k-pad, h)*wd:][:len(s)]
			for j := range s {
				d[j] += wk * s[j]
			}
		}
	}
}

// hpassT is hpass's adjoint: dst[r][refl(j+k-pad)] += w[k] src[r][j].
func hpassT(dst, src []float64, h, wd int, w []float64) {
	pad := len(w) / 2
	lo, hi := pad, wd-pad
	if hi < lo {
		lo, hi = wd, wd
	}
	for r := 0; r < h; r++ {
		s := src[r*wd : (r+1)*wd]
		d := dst[r*wd : (r+1)*wd]
		clear(d)
		if hi > lo {
			// interior sources j in [lo, hi) reach d[j-pad .. j+pad]
			ss := s[lo:hi]
			for k, wk := range w {
				dd := d[lo-pad+k:][:len(ss)]
				for j := range ss {
					dd[j] += wk * ss[j]
				}
			}
		}
		for j := 0; j < wd; j++ {
			if j == lo {
				j = hi
				if j >= wd {
					break
				}
			}
			v := s[j]
			for k, wk := range w {
				d[refl(j+k-pad, wd)] += wk * v
			}
		}
	}
}
