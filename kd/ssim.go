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

	planeLoss, s1, s2 []float64  // per plane
	xext, text        []extremes // per normalisation group
	xinv, tinv        []float64
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

// growF64 returns b resliced to n, or a new slice of at least 4096
// values: an allocation of 32 KiB or more is a large object, which Go
// places at a page boundary, so its rows of 8 values are cache lines.
func growF64(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n, max(n, 4096))
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

// extremes are a normalisation group's minimum and maximum, how many
// elements tie at each (torch's min/max gradients are shared evenly by
// ties) and the index of the first of them.
type extremes struct {
	lo, hi   float32
	nlo, nhi int
	ilo, ihi int
}

// extrema scans d once (a NaN is never taken unless it is d[0]; -0 and +0
// tie, as under ==).
func extrema(d []float32) extremes {
	lo, hi := d[0], d[0] // locals, not the struct's fields, stay in registers
	var nlo, nhi, ilo, ihi int
	for i, x := range d {
		if x <= lo {
			if x < lo {
				lo, nlo, ilo = x, 0, i
			}
			nlo++
		}
		if x >= hi {
			if x > hi {
				hi, nhi, ihi = x, 0, i
			}
			nhi++
		}
	}
	return extremes{lo: lo, hi: hi, nlo: nlo, nhi: nhi, ilo: ilo, ihi: ihi}
}

// extremaSIMD is extrema with the AVX2 kernels where they run (the tie
// counts and first indices only when ties is set; otherwise they are 0).
func extremaSIMD(d []float32, ties bool) extremes {
	n := len(d) &^ 7
	if !haveSSIMAsm || !kernels.AssemblyOn() || n == 0 {
		return extrema(d)
	}
	lo, hi := extremaAVX2(&d[0], n)
	for _, x := range d[n:] {
		if x < lo {
			lo = x
		}
		if x > hi {
			hi = x
		}
	}
	e := extremes{lo: lo, hi: hi}
	if !ties {
		return e
	}
	e.nlo, e.nhi, e.ilo, e.ihi = tiesAVX2(&d[0], n, lo, hi)
	for i := n; i < len(d); i++ {
		if d[i] == lo {
			if e.nlo == 0 {
				e.ilo = i
			}
			e.nlo++
		}
		if d[i] == hi {
			if e.nhi == 0 {
				e.ihi = i
			}
			e.nhi++
		}
	}
	return e
}

// normGroup stores group g's extremes (with tie counts when ties is set)
// and 1/(max-min) (0 for a constant group) in ext and inv.
func normGroup(d []float32, g int, ext []extremes, inv []float64, ties bool) {
	e := extremaSIMD(d, ties)
	ext[g] = e
	if e.hi > e.lo {
		inv[g] = 1 / (float64(e.hi) - float64(e.lo))
	} else {
		inv[g] = 0
	}
}

// minMax runs normGroup on every group of gsize values of v.
func minMax(v []float32, groups, gsize int, ext []extremes, inv []float64, ties bool) {
	kernels.ParallelFor(groups, func(a, b int) {
		for g := a; g < b; g++ {
			normGroup(v[g*gsize:(g+1)*gsize], g, ext, inv, ties)
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
	// one group per plane ("channel"): each plane's worker normalises and
	// corrects its own plane while the plane is in its cache
	perPlane := norm && gsize == 1
	s.planeLoss = growF64(s.planeLoss, planes)
	s.s1 = growF64(s.s1, planes)
	s.s2 = growF64(s.s2, planes)
	if norm {
		s.normGroups(x, t, ng, gsize*hw, !perPlane, grad != nil)
	}
	gS := -0.5 / count // dLoss/dS where the clamp passes the gradient
	kernels.ParallelFor(planes, func(a, b int) {
		sc := <-s.free
		defer func() { s.free <- sc }()
		sc.grow(h, w, pad)
		for pl := a; pl < b; pl++ {
			xs, ts := x[pl*hw:(pl+1)*hw], t[pl*hw:(pl+1)*hw]
			xlo, xinv, tlo, tinv := 0.0, 1.0, 0.0, 1.0
			if norm {
				if perPlane {
					normGroup(xs, pl, s.xext, s.xinv, grad != nil)
					normGroup(ts, pl, s.text, s.tinv, false)
				}
				g := pl / gsize
				xlo, xinv = float64(s.xext[g].lo), s.xinv[g]
				tlo, tinv = float64(s.text[g].lo), s.tinv[g]
			}
			sc.load(sc.px, xs, xlo, xinv)
			sc.load(sc.py, ts, tlo, tinv)
			var mo []float64
			if mapOut != nil {
				mo = mapOut[pl*(r1-r0)*(c1-c0) : (pl+1)*(r1-r0)*(c1-c0)]
			}
			if grad == nil {
				s.planeLoss[pl], _, _ = s.plane(sc, kern, r0, r1, c0, c1, gS, xinv, mo, nil)
				continue
			}
			gp := grad[pl*hw : (pl+1)*hw]
			s.planeLoss[pl], s.s1[pl], s.s2[pl] = s.plane(sc, kern, r0, r1, c0, c1, gS, xinv, mo, gp)
			if perPlane {
				s.correctGroup(pl, xs, gp, s.s1[pl], s.s2[pl])
			}
		}
	})
	var loss float64
	for _, v := range s.planeLoss {
		loss += v
	}
	loss /= count
	if grad != nil && norm && !perPlane {
		s.normCorrections(x, grad, ng, gsize*hw, gsize)
	}
	return loss, nil
}

// normGroups sizes the per-group normalisation state for ng groups and,
// when scan is set, fills it from x and t (glen values per group; the
// student's tie counts when ties is set).
func (s *SSIM) normGroups(x, t []float32, ng, glen int, scan, ties bool) {
	s.xinv, s.tinv = growF64(s.xinv, ng), growF64(s.tinv, ng)
	if cap(s.xext) < ng {
		s.xext, s.text = make([]extremes, ng), make([]extremes, ng)
	}
	s.xext, s.text = s.xext[:ng], s.text[:ng]
	if scan {
		minMax(x, ng, glen, s.xext, s.xinv, ties)
		minMax(t, ng, glen, s.text, s.tinv, false)
	}
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
			var s1, s2 float64
			for p := g * gsize; p < (g+1)*gsize; p++ {
				s1 += s.s1[p]
				s2 += s.s2[p]
			}
			s.correctGroup(g, x[g*glen:(g+1)*glen], grad[g*glen:(g+1)*glen], s1, s2)
		}
	})
}

// correctGroup adds group g's min and max terms (sums s1, s2) to its
// gradient gs at the elements of xs that tie at the group's minimum or
// maximum (xs is only scanned when there is a tie).
func (s *SSIM) correctGroup(g int, xs, gs []float32, s1, s2 float64) {
	inv := s.xinv[g]
	if inv == 0 {
		return // constant group: zero gradient (already written)
	}
	e := s.xext[g]
	dmin := float32(s1 * inv / float64(e.nlo))
	dmax := float32(-s2 * inv / float64(e.nhi))
	if e.nlo == 1 && e.nhi == 1 {
		gs[e.ilo] += dmin
		gs[e.ihi] += dmax
		return
	}
	gs = gs[:len(xs)]
	for i, v := range xs {
		if v == e.lo {
			gs[i] += dmin
		}
		if v == e.hi {
			gs[i] += dmax
		}
	}
}
