package kernels

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"testing"
)

func convCases() []ConvParams {
	mk := func(n, c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw int) ConvParams {
		return ConvParams{N: n, C: c, H: h, W: w, K: k, KH: kh, KW: kw, StrideH: sh, StrideW: sw, PadH: ph, PadW: pw, DilH: dh, DilW: dw}
	}
	return []ConvParams{
		mk(1, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1),     // 3x3 same
		mk(2, 5, 9, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1),     // stride 2, batch 2, odd sizes
		mk(1, 4, 11, 10, 3, 3, 3, 1, 1, 2, 2, 2, 2),   // dilation 2
		mk(2, 8, 6, 5, 16, 1, 1, 1, 1, 0, 0, 1, 1),    // 1x1 pointwise
		mk(1, 8, 7, 9, 5, 1, 1, 2, 2, 0, 0, 1, 1),     // 1x1 stride 2
		mk(1, 3, 17, 15, 8, 7, 7, 2, 2, 3, 3, 1, 1),   // 7x7 stride 2 pad 3 (stem)
		mk(1, 2, 10, 13, 3, 3, 5, 1, 2, 0, 2, 1, 1),   // non-square kernel and stride
		mk(2, 6, 5, 6, 7, 3, 2, 3, 1, 1, 0, 1, 2),     // mixed stride/dilation
		mk(1, 1, 4, 4, 1, 4, 4, 1, 1, 0, 0, 1, 1),     // kernel as large as input
		mk(1, 3, 3, 3, 2, 3, 3, 1, 1, 4, 4, 1, 1),     // padding larger than kernel
		mk(1, 16, 20, 20, 24, 3, 3, 1, 1, 1, 1, 1, 1), // big enough to go parallel
		mk(1, 7, 14, 14, 9, 3, 3, 2, 1, 1, 1, 1, 3),   // asymmetric stride/dilation
		mk(3, 2, 6, 6, 2, 2, 2, 2, 2, 0, 0, 1, 1),     // batch 3, 2x2 stride 2
		mk(1, 64, 14, 14, 32, 1, 1, 1, 1, 0, 0, 1, 1), // 1x1 with K != C
		mk(1, 5, 30, 30, 3, 3, 3, 1, 1, 1, 1, 1, 1),   // few channels, big image
		mk(1, 3, 12, 12, 4, 5, 5, 3, 3, 2, 2, 1, 1),   // 5x5 stride 3
		mk(1, 2, 9, 9, 2, 3, 3, 1, 1, 0, 0, 3, 3),     // dilation 3 no pad
		mk(1, 32, 8, 8, 96, 3, 3, 1, 1, 1, 1, 1, 1),   // small map, many outputs: forward split over m, im2col packed once
		mk(1, 4, 24, 24, 128, 3, 3, 1, 1, 1, 1, 1, 1), // weight gradient split over m, col^T packed once
	}
}

func closeSlices(t *testing.T, what string, p ConvParams, got, want []float32, k int) {
	t.Helper()
	tol := 1e-5 * float64(k+1) * 4
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.Abs(g-w) > tol*math.Max(1, math.Abs(w)) {
			t.Fatalf("%s %+v: [%d] = %v, want %v", what, p, i, g, w)
		}
	}
}

func TestConvAgainstNaive(t *testing.T) {
	for ci, p := range convCases() {
		t.Run(fmt.Sprint(ci), func(t *testing.T) {
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewSource(int64(ci)))
			oh, ow := p.OutHW()
			x := randSlice(r, p.N*p.C*p.H*p.W)
			w := randSlice(r, p.K*p.C*p.KH*p.KW)
			bias := randSlice(r, p.K)
			dy := randSlice(r, p.N*p.K*oh*ow)
			var ws ConvWorkspace
			nan := float32(math.NaN())
			fill := func(n int) []float32 {
				s := make([]float32, n)
				for i := range s {
					s[i] = nan
				}
				return s
			}
			ckk := p.C * p.KH * p.KW

			want := make([]float32, p.N*p.K*oh*ow)
			convForwardNaive(p, x, w, bias, want)
			got := fill(len(want))
			ConvForward(p, x, w, bias, got, &ws)
			closeSlices(t, "forward", p, got, want, ckk)
			got = fill(len(want))
			convForwardNaive(p, x, w, nil, want)
			ConvForward(p, x, w, nil, got, nil)
			closeSlices(t, "forward-nobias-nilws", p, got, want, ckk)

			wantDx := make([]float32, len(x))
			convBackwardDataNaive(p, dy, w, wantDx)
			gotDx := fill(len(x))
			ConvBackwardData(p, dy, w, gotDx, &ws)
			closeSlices(t, "backward-data", p, gotDx, wantDx, p.K*p.KH*p.KW)

			wantDw := make([]float32, len(w))
			wantDb := make([]float32, p.K)
			convBackwardWeightNaive(p, x, dy, wantDw, wantDb)
			gotDw, gotDb := fill(len(w)), fill(p.K)
			ConvBackwardWeight(p, x, dy, gotDw, gotDb, &ws)
			closeSlices(t, "backward-weight", p, gotDw, wantDw, p.N*oh*ow)
			closeSlices(t, "backward-bias", p, gotDb, wantDb, p.N*oh*ow)
			gotDw = fill(len(w))
			ConvBackwardWeight(p, x, dy, gotDw, nil, &ws)
			closeSlices(t, "backward-weight-nodb", p, gotDw, wantDw, p.N*oh*ow)
		})
	}
}

// TestConvGenericKernel runs a few shapes through the pure-Go GEMM path.
func TestConvGenericKernel(t *testing.T) {
	prev := UseAssembly(false)
	defer UseAssembly(prev)
	cases := convCases()
	for _, p := range []ConvParams{cases[1], cases[3], cases[5]} {
		r := rand.New(rand.NewSource(7))
		oh, ow := p.OutHW()
		x := randSlice(r, p.N*p.C*p.H*p.W)
		w := randSlice(r, p.K*p.C*p.KH*p.KW)
		dy := randSlice(r, p.N*p.K*oh*ow)
		want := make([]float32, p.N*p.K*oh*ow)
		got := make([]float32, len(want))
		convForwardNaive(p, x, w, nil, want)
		ConvForward(p, x, w, nil, got, nil)
		closeSlices(t, "generic forward", p, got, want, p.C*p.KH*p.KW)
		wantDw, gotDw := make([]float32, len(w)), make([]float32, len(w))
		convBackwardWeightNaive(p, x, dy, wantDw, nil)
		ConvBackwardWeight(p, x, dy, gotDw, nil, nil)
		closeSlices(t, "generic backward-weight", p, gotDw, wantDw, p.N*oh*ow)
	}
}

// TestConvFiniteDifference checks the backward kernels against central
// differences of L = sum(y * g) on a tiny shape (float64 accumulation of the
// loss keeps the differences meaningful in float32).
func TestConvFiniteDifference(t *testing.T) {
	p := ConvParams{N: 2, C: 2, H: 5, W: 4, K: 3, KH: 3, KW: 2, StrideH: 2, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 2}
	r := rand.New(rand.NewSource(3))
	oh, ow := p.OutHW()
	x := randSlice(r, p.N*p.C*p.H*p.W)
	w := randSlice(r, p.K*p.C*p.KH*p.KW)
	bias := randSlice(r, p.K)
	g := randSlice(r, p.N*p.K*oh*ow)
	y := make([]float32, len(g))
	loss := func() float64 {
		ConvForward(p, x, w, bias, y, nil)
		var s float64
		for i := range y {
			s += float64(y[i]) * float64(g[i])
		}
		return s
	}
	dx := make([]float32, len(x))
	dw := make([]float32, len(w))
	db := make([]float32, len(bias))
	ConvBackwardData(p, g, w, dx, nil)
	ConvBackwardWeight(p, x, g, dw, db, nil)
	const eps = 1e-2
	check := func(name string, param, grad []float32) {
		for i := range param {
			orig := param[i]
			param[i] = orig + eps
			lp := loss()
			param[i] = orig - eps
			lm := loss()
			param[i] = orig
			fd := (lp - lm) / (2 * eps)
			if math.Abs(fd-float64(grad[i])) > 2e-3*math.Max(1, math.Abs(fd)) {
				t.Fatalf("%s[%d]: analytic %v, finite difference %v", name, i, grad[i], fd)
			}
		}
	}
	check("dx", x, dx)
	check("dw", w, dw)
	check("db", bias, db)
}

func TestConvWorkspaceReuse(t *testing.T) {
	p := ConvParams{N: 1, C: 16, H: 20, W: 20, K: 8, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1}
	r := rand.New(rand.NewSource(5))
	x := randSlice(r, 16*400)
	w := randSlice(r, 8*144)
	y := make([]float32, 8*400)
	dx := make([]float32, len(x))
	dw := make([]float32, len(w))
	var ws ConvWorkspace
	run := func() {
		ConvForward(p, x, w, nil, y, &ws)
		ConvBackwardData(p, y, w, dx, &ws)
		ConvBackwardWeight(p, x, y, dw, nil, &ws)
	}
	runtime.GC()
	run()
	first := &ws.buf[0]
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 5
	for i := 0; i < runs; i++ {
		run()
	}
	runtime.ReadMemStats(&after)
	if &ws.buf[0] != first {
		t.Fatal("workspace buffer reallocated on a second run of the same shape")
	}
	// Only small bookkeeping objects (task descriptors), no buffers: the col
	// buffer alone is 144*400*4 = 230 KB, a packing buffer megabytes.
	if raceEnabled {
		return
	}
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 16<<10 {
		t.Fatalf("a forward+backward run allocates %d bytes in steady state", perRun)
	}
}

func TestConvBadArguments(t *testing.T) {
	p := ConvParams{N: 1, C: 1, H: 3, W: 3, K: 1, KH: 3, KW: 3, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1}
	bad := p
	bad.StrideH = 0
	cases := []func(){
		func() { ConvForward(p, make([]float32, 8), make([]float32, 9), nil, make([]float32, 1), nil) },
		func() { ConvForward(bad, make([]float32, 9), make([]float32, 9), nil, make([]float32, 1), nil) },
		func() { ConvBackwardData(p, make([]float32, 1), make([]float32, 9), make([]float32, 3), nil) },
		func() {
			ConvBackwardWeight(p, make([]float32, 9), make([]float32, 1), make([]float32, 9), make([]float32, 0), nil)
		},
	}
	for i, f := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("case %d: no panic on bad arguments", i)
				}
			}()
			f()
		}()
	}
}

func TestAddVec(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 77, 130} {
		src := randSlice(r, n)
		dst := randSlice(r, n+3)
		want := append([]float32(nil), dst...)
		for i := 0; i < n; i++ {
			want[i] += src[i]
		}
		addVec(dst, src)
		for i := range want {
			if dst[i] != want[i] {
				t.Fatalf("n=%d: [%d] = %v, want %v", n, i, dst[i], want[i])
			}
		}
	}
}

// TestColSourceSegment checks the implicit im2col rows against the
// materialised im2col matrix for every case, at awkward offsets.
func TestColSourceSegment(t *testing.T) {
	for ci, p := range convCases() {
		r := rand.New(rand.NewSource(int64(ci)))
		oh, ow := p.OutHW()
		ohw, ckk := oh*ow, p.C*p.KH*p.KW
		x := randSlice(r, p.C*p.H*p.W)
		col := make([]float32, ckk*ohw)
		im2col(p, x, col)
		src := newColSource(p, x, false)
		for row := 0; row < ckk; row++ {
			j0 := (row * 7) % ohw
			seg := make([]float32, ohw-j0)
			src.segment(row, j0, seg)
			for j, v := range seg {
				if want := col[row*ohw+j0+j]; v != want {
					t.Fatalf("case %d row %d col %d: %v, want %v", ci, row, j0+j, v, want)
				}
			}
		}
	}
}

// TestConvBackwardDataPaths runs every case through both backward-data
// paths (the transposed forward convolution of stride-1 convs and the
// banded column matrix with col2im), the latter with bands of 1, 2 and 3
// output rows and unbanded, against the naive adjoint.
func TestConvBackwardDataPaths(t *testing.T) {
	defer func(v bool, b int) { bwdDataViaCol, bwdDataBandRows = v, b }(bwdDataViaCol, bwdDataBandRows)
	transposed := 0
	for ci, p := range convCases() {
		if _, ok := p.transposedForward(); ok && !p.isPointwise() {
			transposed++
		}
		r := rand.New(rand.NewSource(int64(ci)))
		oh, ow := p.OutHW()
		w := randSlice(r, p.K*p.C*p.KH*p.KW)
		dy := randSlice(r, p.N*p.K*oh*ow)
		want := make([]float32, p.N*p.C*p.H*p.W)
		convBackwardDataNaive(p, dy, w, want)
		for _, mode := range []struct {
			viaCol bool
			band   int
		}{{false, 0}, {true, 0}, {true, 1}, {true, 2}, {true, 3}} {
			bwdDataViaCol, bwdDataBandRows = mode.viaCol, mode.band
			got := make([]float32, len(want))
			for i := range got {
				got[i] = float32(math.NaN())
			}
			var ws ConvWorkspace
			ConvBackwardData(p, dy, w, got, &ws)
			closeSlices(t, fmt.Sprintf("backward-data viaCol=%v band=%d", mode.viaCol, mode.band), p, got, want, p.K*p.KH*p.KW)
		}
	}
	if transposed < 5 {
		t.Fatalf("only %d cases take the transposed-forward path", transposed)
	}
}

// TestConvBackwardDataNoColumnMatrix pins the workspace of the stride-1
// path to the flipped kernel (no column matrix) and that of the strided
// path to one band.
func TestConvBackwardDataNoColumnMatrix(t *testing.T) {
	p := conv2d(1, 32, 40, 40, 16, 3, 1, 1)
	r := rand.New(rand.NewSource(2))
	w := randSlice(r, 16*32*9)
	dy := randSlice(r, 16*40*40)
	dx := make([]float32, 32*40*40)
	var ws ConvWorkspace
	ConvBackwardData(p, dy, w, dx, &ws)
	if ws.Cap() != len(w) {
		t.Fatalf("stride 1: workspace %d floats, want the flipped kernel's %d", ws.Cap(), len(w))
	}
	p = conv2d(1, 32, 400, 400, 16, 3, 2, 1)
	dy = randSlice(r, 16*200*200)
	dx = make([]float32, 32*400*400)
	ws = ConvWorkspace{}
	ConvBackwardData(p, dy, w, dx, &ws)
	if ws.Cap() > colBandFloats {
		t.Fatalf("stride 2: workspace %d floats, want <= %d", ws.Cap(), colBandFloats)
	}
}

// TestRowsPad compares the active rowsPad (AVX on amd64) with the Go
// version over counts around the vector width, and runs the convolution
// cases with the Go version.
func TestRowsPad(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	src := randSlice(r, 40*30)
	for _, rows := range []int{1, 3} {
		for _, lead := range []int{0, 1, 2} {
			for _, cnt := range []int{1, 5, 7, 8, 9, 15, 16, 17, 23} {
				for _, trail := range []int{0, 1, 3} {
					ldd := lead + cnt + trail + 2
					want := make([]float32, rows*ldd)
					got := make([]float32, rows*ldd)
					for i := range want {
						want[i], got[i] = 9, 9 // padding columns must stay 9
					}
					rowsPadGo(want, ldd, src[5:], 30, rows, lead, cnt, trail)
					rowsPad(got, ldd, src[5:], 30, rows, lead, cnt, trail)
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("rows %d lead %d cnt %d trail %d: [%d] = %v, want %v", rows, lead, cnt, trail, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
	prev := rowsPad
	rowsPad = rowsPadGo
	defer func() { rowsPad = prev }()
	for ci, p := range convCases() {
		rr := rand.New(rand.NewSource(int64(ci)))
		oh, ow := p.OutHW()
		x := randSlice(rr, p.N*p.C*p.H*p.W)
		w := randSlice(rr, p.K*p.C*p.KH*p.KW)
		want := make([]float32, p.N*p.K*oh*ow)
		got := make([]float32, len(want))
		convForwardNaive(p, x, w, nil, want)
		ConvForward(p, x, w, nil, got, nil)
		closeSlices(t, "forward with rowsPadGo", p, got, want, p.C*p.KH*p.KW)
	}
}

// TestPanelRows compares the active panelRows (AVX on amd64) with the Go
// version; values between the panels' rows must stay untouched.
func TestPanelRows(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	for _, nr := range []int{4, 16, 48} {
		for _, kc := range []int{1, 3} {
			for np := 0; np <= 4; np++ {
				src := randSlice(r, 4*nr)
				want := make([]float32, 4*nr*kc+5)
				got := make([]float32, len(want))
				for i := range want {
					want[i], got[i] = 9, 9
				}
				panelRowsGo(src, want, nr, kc, np)
				panelRows(src, got, nr, kc, np)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("nr %d kc %d panels %d: [%d] = %v, want %v", nr, kc, np, i, got[i], want[i])
					}
				}
			}
		}
	}
}
