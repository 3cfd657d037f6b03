package kd

import (
	"math"
	"math/rand"
	"strings"
	"testing"
)

// distinct returns n values in [-scale, scale) whose gaps are at least
// scale/n (a shuffled grid plus jitter), so that finite differences of
// size << scale/n never change which element is a minimum or maximum.
func distinct(rng *rand.Rand, n int, scale float64) []float32 {
	perm := rng.Perm(n)
	v := make([]float32, n)
	for i, p := range perm {
		v[i] = float32((2*(float64(p)+0.1+0.8*rng.Float64())/float64(n) - 1) * scale)
	}
	return v
}

// fdCheck compares the analytic gradient of a kernel with central
// differences of its float64 loss at every element (the step actually
// taken in float32 is the denominator).
func fdCheck(t *testing.T, l LevelLoss, shape [4]int, x, tt []float32, eps, tol float64) {
	t.Helper()
	g := make([]float32, len(x))
	if _, err := l.Loss(x, tt, shape, g); err != nil {
		t.Fatal(err)
	}
	var gmax float64
	for _, v := range g {
		gmax = math.Max(gmax, math.Abs(float64(v)))
	}
	if gmax == 0 {
		t.Fatal("gradient is identically zero")
	}
	bad := 0
	for j := range x {
		orig := x[j]
		x[j] = float32(float64(orig) + eps)
		xp := float64(x[j])
		lp, err := l.Loss(x, tt, shape, nil)
		if err != nil {
			t.Fatal(err)
		}
		x[j] = float32(float64(orig) - eps)
		xm := float64(x[j])
		lm, _ := l.Loss(x, tt, shape, nil)
		x[j] = orig
		fd := (lp - lm) / (xp - xm)
		if math.Abs(fd-float64(g[j])) > tol*gmax {
			if bad++; bad <= 5 {
				t.Errorf("elem %d: analytic %.8g, finite difference %.8g (max |grad| %.3g)", j, g[j], fd, gmax)
			}
		}
	}
}

func TestSSIMFiniteDifferences(t *testing.T) {
	type tc struct {
		shape [4]int
		cfg   SSIMConfig
	}
	var cases []tc
	for _, norm := range []string{"channel", "level", "none"} {
		for _, terms := range []string{"full", "cs", "s"} {
			for _, pad := range []string{"same", "valid"} {
				cases = append(cases, tc{[4]int{2, 2, 7, 9}, SSIMConfig{Window: 5, Normalize: norm, Terms: terms, Padding: pad}})
			}
		}
	}
	cases = append(cases,
		tc{[4]int{1, 2, 6, 7}, SSIMConfig{}},                     // 11 window on a 6x7 map
		tc{[4]int{1, 2, 4, 5}, SSIMConfig{}},                     // shrinks to 7
		tc{[4]int{1, 1, 2, 3}, SSIMConfig{}},                     // shrinks to 3
		tc{[4]int{1, 2, 1, 4}, SSIMConfig{}},                     // window 1
		tc{[4]int{1, 2, 5, 6}, SSIMConfig{Padding: "valid"}},     // shrinks to 5
		tc{[4]int{2, 3, 12, 13}, SSIMConfig{Normalize: "level"}}, // 11 window, whole-image psi
	)
	rng := rand.New(rand.NewSource(11))
	for _, c := range cases {
		name := c.cfg.withDefaults().Normalize + "/" + c.cfg.withDefaults().Terms + "/" + c.cfg.withDefaults().Padding
		t.Run(name, func(t *testing.T) {
			s, err := NewSSIM(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			n := numel(c.shape)
			x, tt := distinct(rng, n, 1), distinct(rng, n, 1)
			if c.cfg.Normalize == "none" {
				for i := range x {
					x[i], tt[i] = (x[i]+1)/2, (tt[i]+1)/2
				}
			}
			fdCheck(t, s, c.shape, x, tt, 1e-3/float64(n), 2e-4)
		})
	}
}

func TestOtherLossesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	shape := [4]int{2, 3, 4, 5}
	for _, c := range []struct {
		name string
		l    LevelLoss
	}{{"l1", &L1{}}, {"l2", &L2{}}, {"pkd", &PKD{}}, {"cwd", &CWD{Tau: 1}}, {"cwd_tau3", &CWD{Tau: 3}}, {"sum_mse", &SumMSE{}}} {
		t.Run(c.name, func(t *testing.T) {
			x, tt := distinct(rng, numel(shape), 2), distinct(rng, numel(shape), 2)
			fdCheck(t, c.l, shape, x, tt, 1e-3, 1e-4)
		})
	}
}

// TestEffectiveWindow pins the small-map rule.
func TestEffectiveWindow(t *testing.T) {
	same, valid := SSIMConfig{}, SSIMConfig{Padding: "valid"}
	for _, c := range []struct {
		cfg     SSIMConfig
		h, w, k int
	}{
		{same, 200, 336, 11}, {same, 6, 7, 11}, {same, 5, 9, 9}, {same, 4, 5, 7}, {same, 2, 3, 3}, {same, 1, 5, 1},
		{valid, 11, 20, 11}, {valid, 10, 20, 9}, {valid, 4, 6, 3}, {valid, 1, 1, 1},
		{SSIMConfig{Window: 7}, 5, 5, 7}, {SSIMConfig{Window: 7}, 3, 9, 5},
	} {
		if got := c.cfg.EffectiveWindow(c.h, c.w); got != c.k {
			t.Errorf("%s window %d on %dx%d: %d, want %d", c.cfg.withDefaults().Padding, c.cfg.withDefaults().Window, c.h, c.w, got, c.k)
		}
	}
}

// TestSSIMInvariances: psi makes the loss invariant to x -> a x + b
// (a > 0) per normalisation group, so per group sum_i g_i = 0 and
// sum_i x_i g_i = 0 must hold for the exact gradient, also with ties at
// the minimum and maximum (where torch shares the extreme's gradient).
func TestSSIMInvariances(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	for _, norm := range []string{"channel", "level"} {
		shape := [4]int{2, 3, 9, 8}
		s, _ := NewSSIM(SSIMConfig{Normalize: norm})
		x, tt := distinct(rng, numel(shape), 1), distinct(rng, numel(shape), 1)
		// ties: three elements at the minimum and two at the maximum of
		// each plane
		hw := 72
		for p := 0; p < 6; p++ {
			d := x[p*hw : (p+1)*hw]
			d[0], d[5], d[40] = -3, -3, -3
			d[7], d[60] = 3, 3
		}
		g := make([]float32, len(x))
		v, err := s.Loss(x, tt, shape, g)
		if err != nil {
			t.Fatal(err)
		}
		glen := hw
		if norm == "level" {
			glen = 3 * hw
		}
		for grp := 0; grp < len(x)/glen; grp++ {
			var s0, s1, gabs float64
			for i := grp * glen; i < (grp+1)*glen; i++ {
				s0 += float64(g[i])
				s1 += float64(g[i]) * float64(x[i])
				gabs += math.Abs(float64(g[i]))
			}
			if math.Abs(s0) > 1e-6*gabs || math.Abs(s1) > 1e-6*gabs*3 {
				t.Errorf("%s group %d: sum g = %.3g, sum x g = %.3g (sum |g| %.3g)", norm, grp, s0, s1, gabs)
			}
		}
		// the loss itself is invariant to a x + b
		y := make([]float32, len(x))
		for i, v := range x {
			y[i] = 2.5*v - 0.75
		}
		w, _ := s.Loss(y, tt, shape, nil)
		if math.Abs(w-v) > 1e-6*v {
			t.Errorf("%s: loss %v, after x -> 2.5x - 0.75 %v", norm, v, w)
		}
		// identical student and teacher: loss 0
		z, _ := s.Loss(tt, tt, shape, nil)
		if math.Abs(z) > 1e-9 {
			t.Errorf("%s: loss(t, t) = %v, want 0", norm, z)
		}
	}
}

// TestSSIMConstantMaps: a constant plane normalises to 0 and gets no
// gradient; nothing is NaN.
func TestSSIMConstantMaps(t *testing.T) {
	shape := [4]int{1, 2, 8, 8}
	rng := rand.New(rand.NewSource(14))
	x, tt := distinct(rng, 128, 1), distinct(rng, 128, 1)
	for i := 0; i < 64; i++ {
		x[i] = 0.7 // plane 0 of the student constant
		tt[64+i] = -2
	}
	for _, terms := range []string{"full", "cs", "s"} {
		s, _ := NewSSIM(SSIMConfig{Terms: terms})
		g := make([]float32, 128)
		v, err := s.Loss(x, tt, shape, g)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("%s: loss %v, err %v", terms, v, err)
		}
		for i, gv := range g {
			if math.IsNaN(float64(gv)) || (i < 64 && gv != 0) {
				t.Fatalf("%s: gradient[%d] = %v (constant plane must get 0)", terms, i, gv)
			}
		}
		// the constant plane's map equals the SSIM of a zero map
		m, _ := s.Map(x, tt, shape)
		zero := make([]float32, 128)
		copy(zero[64:], x[64:])
		m0, _ := s.Map(zero, tt, shape)
		for i := 0; i < 64; i++ {
			if m[i] != m0[i] {
				t.Fatalf("%s: constant plane map %v, zero plane %v", terms, m[i], m0[i])
			}
		}
	}
}

func TestKernelErrors(t *testing.T) {
	for _, cfg := range []SSIMConfig{{Window: 4}, {Window: -1}, {Sigma: -1}, {Padding: "zeros"}, {Normalize: "global"}, {Terms: "l"}} {
		if _, err := NewSSIM(cfg); err == nil {
			t.Errorf("NewSSIM(%+v) accepted", cfg)
		}
	}
	s, _ := NewSSIM(SSIMConfig{})
	x := make([]float32, 24)
	if _, err := s.Loss(x, x[:20], [4]int{1, 2, 3, 4}, nil); err == nil || !strings.Contains(err.Error(), "teacher has 20") {
		t.Errorf("short teacher: %v", err)
	}
	if _, err := s.Loss(x, x, [4]int{1, 2, 3, 4}, make([]float32, 3)); err == nil {
		t.Error("short gradient buffer accepted")
	}
	if _, err := s.Loss(nil, nil, [4]int{0, 2, 3, 4}, nil); err == nil {
		t.Error("empty shape accepted")
	}
	if _, err := (&PKD{}).Loss(x[:2], x[:2], [4]int{1, 2, 1, 1}, nil); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("PKD with one value per channel: %v", err)
	}
	if _, err := (&CWD{}).Loss(x, x, [4]int{1, 2, 3, 4}, nil); err == nil {
		t.Error("CWD with tau 0 accepted")
	}
}
