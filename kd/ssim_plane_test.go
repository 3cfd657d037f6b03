package kd

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/skd-go/skd/kernels"
)

// naiveSSIM is the SSIM loss of SSIMConfig written out directly on raw
// [0, 1] inputs (normalize "none"): every local statistic is a sum over
// the 2-D window with the reflect index, and the gradient scatters each
// position's derivatives back through the same window. It returns the
// loss, the map and dLoss/dx.
func naiveSSIM(cfg SSIMConfig, x, t []float32, shape [4]int) (float64, []float64, []float64) {
	cfg = cfg.withDefaults()
	h, w := shape[2], shape[3]
	k := cfg.EffectiveWindow(h, w)
	g1 := gaussian1D(k, cfg.Sigma)
	p := k / 2
	r0, r1, c0, c1 := 0, h, 0, w
	if cfg.Padding == "valid" {
		r0, r1, c0, c1 = p, h-p, p, w-p
	}
	count := float64(shape[0] * shape[1] * (r1 - r0) * (c1 - c0))
	grad := make([]float64, len(x))
	var mp []float64
	var loss float64
	for pl := 0; pl < shape[0]*shape[1]; pl++ {
		xs, ts, gs := x[pl*h*w:(pl+1)*h*w], t[pl*h*w:(pl+1)*h*w], grad[pl*h*w:(pl+1)*h*w]
		window := func(r, c int, f func(q int, wt float64)) {
			for a := 0; a < k; a++ {
				for b := 0; b < k; b++ {
					f(refl(r+a-p, h)*w+refl(c+b-p, w), g1[a]*g1[b])
				}
			}
		}
		for r := r0; r < r1; r++ {
			for c := c0; c < c1; c++ {
				var mx, my, exx, eyy, exy float64
				window(r, c, func(q int, wt float64) {
					xv, tv := float64(xs[q]), float64(ts[q])
					mx += wt * xv
					my += wt * tv
					exx += wt * xv * xv
					eyy += wt * tv * tv
					exy += wt * xv * tv
				})
				v, dMu, dSx, dSxy := ssimTerm(cfg.Terms, mx, my, exx-mx*mx, eyy-my*my, exy-mx*my)
				mp = append(mp, v)
				l := (1 - v) / 2
				loss += min(max(l, 0), 1)
				if l < 0 || l > 1 {
					continue
				}
				gmu, gxx, gxy := -0.5/count*(dMu-2*mx*dSx-my*dSxy), -0.5/count*dSx, -0.5/count*dSxy
				window(r, c, func(q int, wt float64) {
					gs[q] += wt * (gmu + 2*float64(xs[q])*gxx + float64(ts[q])*gxy)
				})
			}
		}
	}
	return loss / count, mp, grad
}

// TestSSIMPlaneMatchesNaive: the padded, FIR64-based plane computation
// (with the assembly kernel and with the Go one) against naiveSSIM on
// maps from 1 x 7 to 80 x 80, every padding, term set and small-map
// window: loss, map and gradient agree to float64 rounding.
func TestSSIMPlaneMatchesNaive(t *testing.T) {
	shapes := [][4]int{{1, 2, 13, 17}, {2, 1, 80, 80}, {1, 3, 5, 5}, {1, 1, 1, 7}, {1, 2, 2, 3}, {1, 1, 20, 9}, {1, 1, 6, 70}}
	rng := rand.New(rand.NewSource(11))
	for _, asm := range []bool{true, false} {
		prev := kernels.UseAssembly(asm)
		for _, shape := range shapes {
			n := shape[0] * shape[1] * shape[2] * shape[3]
			x, tt := make([]float32, n), make([]float32, n)
			for i := range x {
				x[i], tt[i] = rng.Float32(), rng.Float32()
			}
			for _, cfg := range []SSIMConfig{{}, {Padding: "valid"}, {Terms: "cs"}, {Terms: "s"}, {Window: 7, Sigma: 2}} {
				cfg.Normalize = "none"
				name := fmt.Sprintf("asm=%v/%v/%+v", asm, shape, cfg)
				if cfg.Padding == "valid" && min(shape[2], shape[3]) < 3 {
					continue
				}
				comparePlane(t, name, cfg, x, tt, shape)
			}
		}
		kernels.UseAssembly(prev)
	}
}

func comparePlane(t *testing.T, name string, cfg SSIMConfig, x, tt []float32, shape [4]int) {
	t.Helper()
	s, err := NewSSIM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := make([]float32, len(x))
	loss, err := s.Loss(x, tt, shape, g)
	if err != nil {
		t.Fatal(err)
	}
	mp, err := s.Map(x, tt, shape)
	if err != nil {
		t.Fatal(err)
	}
	wl, wm, wg := naiveSSIM(cfg, x, tt, shape)
	if math.Abs(loss-wl) > 1e-13*math.Abs(wl) {
		t.Errorf("%s: loss %.17g, naive %.17g", name, loss, wl)
	}
	if len(mp) != len(wm) {
		t.Fatalf("%s: map has %d values, naive %d", name, len(mp), len(wm))
	}
	for i := range wm {
		if math.Abs(mp[i]-wm[i]) > 1e-11 {
			t.Fatalf("%s: map[%d] = %.17g, naive %.17g", name, i, mp[i], wm[i])
		}
	}
	var gmax float64
	for _, v := range wg {
		gmax = math.Max(gmax, math.Abs(v))
	}
	for i := range wg {
		// the kernel's gradient is float32: its rounding dominates
		if math.Abs(float64(g[i])-wg[i]) > 1e-6*gmax {
			t.Fatalf("%s: grad[%d] = %.9g, naive %.9g (max %.3g)", name, i, g[i], wg[i], gmax)
		}
	}
}

// TestGaussianSymmetric: the adjoint passes use the window as its own
// reverse.
func TestGaussianSymmetric(t *testing.T) {
	for k := 1; k <= 21; k += 2 {
		for _, sigma := range []float64{0.5, 1.5, 3.7} {
			w := gaussian1D(k, sigma)
			for i := range w {
				if w[i] != w[k-1-i] {
					t.Fatalf("window %d sigma %v: w[%d] = %v, w[%d] = %v", k, sigma, i, w[i], k-1-i, w[k-1-i])
				}
			}
		}
	}
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

// TestSSIMFullSIMD: the assembly "full" row kernel against the Go loop on
// arbitrary statistics (not from real maps, so that S leaves [-1, 1] and
// the clamp blocks some gradients), row lengths around its four-wide
// step, with and without gradients and with a NaN position.
func TestSSIMFullSIMD(t *testing.T) {
	if !haveSSIMAsm || !kernels.AssemblyOn() {
		t.Skip("no SSIM assembly on this CPU")
	}
	rng := rand.New(rand.NewSource(5))
	vc := newSSIMVecConsts(-0.25)
	for _, n := range []int{1, 3, 4, 5, 8, 13, 80} {
		for _, need := range []bool{false, true} {
			mk := func() []float64 {
				v := make([]float64, n)
				for i := range v {
					v[i] = rng.Float64()*1.6 - 0.3
				}
				return v
			}
			st := ssimRow{mux: mk(), muy: mk(), exx: mk(), eyy: mk(), exy: mk()}
			if n >= 5 {
				st.exy[4] = math.NaN()
			}
			ref := st
			if need {
				st.gmu, st.gxx, st.gxy = make([]float64, n), make([]float64, n), make([]float64, n)
				ref.gmu, ref.gxx, ref.gxy = make([]float64, n), make([]float64, n), make([]float64, n)
			}
			got, want := st.fullSIMD(&vc, -0.25, need), ref.full(-0.25, need)
			if n >= 5 {
				if !math.IsNaN(got) || !math.IsNaN(want) {
					t.Fatalf("n %d: loss %v, Go %v: want NaN from the NaN position", n, got, want)
				}
			} else if math.Abs(got-want) > 1e-13*math.Abs(want) {
				t.Fatalf("n %d: loss %.17g, Go %.17g", n, got, want)
			}
			if !need {
				continue
			}
			for _, p := range [][2][]float64{{st.gmu, ref.gmu}, {st.gxx, ref.gxx}, {st.gxy, ref.gxy}} {
				for i := range p[1] {
					a, b := p[0][i], p[1][i]
					if math.Abs(a-b) > 1e-12*math.Max(math.Abs(b), 1) {
						t.Fatalf("n %d need %v: gradient[%d] = %.17g, Go %.17g", n, need, i, a, b)
					}
				}
			}
		}
	}
}

// TestExtremaSIMD: the AVX2 min/max and tie scans against extrema on
// lengths around their eight-wide step, with planted ties at both ends
// (in the vector body and the tail), NaNs (skipped unless first) and
// signed zeros (which tie).
func TestExtremaSIMD(t *testing.T) {
	if !haveSSIMAsm || !kernels.AssemblyOn() {
		t.Skip("no SSIM assembly on this CPU")
	}
	rng := rand.New(rand.NewSource(9))
	for _, n := range []int{1, 7, 8, 9, 16, 25, 100, 6400} {
		for trial := 0; trial < 6; trial++ {
			d := make([]float32, n)
			for i := range d {
				d[i] = float32(rng.NormFloat64())
			}
			switch trial {
			case 1: // ties at both extremes, one of them in the tail
				d[rng.Intn(n)], d[n-1] = -9, -9
				d[rng.Intn(n)], d[n/2] = 9, 9
			case 2:
				d[rng.Intn(n)] = float32(math.NaN())
			case 3:
				d[0] = float32(math.NaN())
			case 4: // the minimum is zero, of both signs
				for i := range d {
					d[i] = float32(math.Abs(float64(d[i]))) + 1
				}
				d[rng.Intn(n)] = float32(math.Copysign(0, -1))
				d[rng.Intn(n)] = 0
			case 5: // constant
				for i := range d {
					d[i] = 2
				}
			}
			want := extrema(d)
			got := extremaSIMD(d, true)
			same := func(a, b float32) bool { return a == b || a != a && b != b }
			if !same(got.lo, want.lo) || !same(got.hi, want.hi) || got.nlo != want.nlo || got.nhi != want.nhi ||
				(want.nlo > 0 && got.ilo != want.ilo) || (want.nhi > 0 && got.ihi != want.ihi) {
				t.Fatalf("n %d trial %d: %+v, want %+v", n, trial, got, want)
			}
			if e := extremaSIMD(d, false); !same(e.lo, want.lo) || !same(e.hi, want.hi) {
				t.Fatalf("n %d trial %d without ties: %+v, want %+v", n, trial, e, want)
			}
		}
	}
}
