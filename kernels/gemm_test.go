package kernels

import (
	"math"
	"math/rand"
	"runtime"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = r.Float32()*2 - 1
	}
	return s
}

type gemmCase struct {
	tA, tB      bool
	m, n, k     int
	alpha, beta float32
	pad         int // extra leading-dimension padding
}

func gemmCases() []gemmCase {
	var cs []gemmCase
	sizes := [][3]int{
		{1, 1, 1}, {1, 17, 5}, {17, 1, 9}, {1, 1, 300}, {5, 7, 3}, {6, 16, 8},
		{7, 17, 33}, {12, 32, 256}, {13, 31, 257}, {37, 45, 513}, {64, 100, 27},
		{150, 70, 40}, {3, 200, 600}, {200, 3, 64}, {145, 3077, 5}, {64, 300, 576},
	}
	ab := [][2]float32{{1, 0}, {1, 1}, {0.5, -2}, {-1.5, 0.25}}
	i := 0
	for _, s := range sizes {
		for t := 0; t < 4; t++ {
			x := ab[i%len(ab)]
			cs = append(cs, gemmCase{t&1 != 0, t&2 != 0, s[0], s[1], s[2], x[0], x[1], i % 3})
			i++
		}
	}
	return cs
}

// runGemm runs one case with fn and returns C (filled with a fixed pattern,
// NaN when beta == 0, before the call).
func runGemm(cs gemmCase, seed int64, fn func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)) []float32 {
	r := rand.New(rand.NewSource(seed))
	ar, ac := cs.m, cs.k
	if cs.tA {
		ar, ac = cs.k, cs.m
	}
	br, bc := cs.k, cs.n
	if cs.tB {
		br, bc = cs.n, cs.k
	}
	lda, ldb, ldc := ac+cs.pad, bc+cs.pad, cs.n+cs.pad
	a := randSlice(r, (ar-1)*lda+ac)
	b := randSlice(r, (br-1)*ldb+bc)
	c := randSlice(r, cs.m*ldc)
	if cs.beta == 0 {
		for i := range c {
			c[i] = float32(math.NaN())
		}
	}
	fn(cs.tA, cs.tB, cs.m, cs.n, cs.k, cs.alpha, a, lda, b, ldb, cs.beta, c, ldc)
	return c
}

func compareC(t *testing.T, what string, cs gemmCase, got, want []float32) {
	t.Helper()
	ldc := cs.n + cs.pad
	tol := 1e-5 * float64(cs.k+1) * 2
	for i := 0; i < cs.m; i++ {
		for j := 0; j < cs.n; j++ {
			g, w := float64(got[i*ldc+j]), float64(want[i*ldc+j])
			if math.IsNaN(g) || math.Abs(g-w) > tol*math.Max(1, math.Abs(w)) {
				t.Fatalf("%s %+v: C[%d,%d] = %v, want %v", what, cs, i, j, g, w)
			}
		}
		// Padding between rows must be untouched.
		for j := cs.n; j < ldc && i < cs.m-1; j++ {
			g, w := got[i*ldc+j], want[i*ldc+j]
			if !(g == w || (g != g && w != w)) {
				t.Fatalf("%s %+v: padding C[%d,%d] changed: %v, want %v", what, cs, i, j, g, w)
			}
		}
	}
}

func withKernel(kern *microKernel) func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	return func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
		if err := checkSgemm(tA, tB, m, n, k, a, lda, b, ldb, c, ldc); err != nil {
			panic(err)
		}
		sgemmWith(kern, tA, m, n, k, alpha, a, lda, bSource{trans: tB, b: b, ldb: ldb}, beta, c, ldc)
	}
}

// allKernels lists the micro-kernels this CPU can run.
func allKernels(t *testing.T) []*microKernel {
	kerns := []*microKernel{genericKernel}
	for _, k := range []*microKernel{avx2Kernel, avx512Kernel} {
		if k != nil {
			kerns = append(kerns, k)
		} else {
			t.Log("an assembly kernel is not supported on this CPU and is not tested")
		}
	}
	return kerns
}

func TestSgemmKernelsAgainstNaive(t *testing.T) {
	kerns := allKernels(t)
	for ci, cs := range gemmCases() {
		want := runGemm(cs, int64(ci), sgemmNaive)
		for _, kern := range kerns {
			got := runGemm(cs, int64(ci), withKernel(kern))
			compareC(t, kern.name, cs, got, want)
		}
		got := runGemm(cs, int64(ci), Sgemm)
		compareC(t, "Sgemm", cs, got, want)
	}
}

// TestSgemmSmallBlocks forces tiny cache blocks so that every blocking loop
// (several jc, pc and ic blocks, partial blocks) runs on small shapes.
func TestSgemmSmallBlocks(t *testing.T) {
	var kerns []*microKernel
	for _, k := range allKernels(t) {
		small := *k
		small.mc, small.kc, small.nc = 2*k.mr, 7, 3*k.nr
		kerns = append(kerns, &small)
	}
	for ci, cs := range gemmCases() {
		want := runGemm(cs, int64(ci), sgemmNaive)
		for _, kern := range kerns {
			got := runGemm(cs, int64(ci), withKernel(kern))
			compareC(t, kern.name+"-smallblocks", cs, got, want)
		}
	}
}

func TestSgemmSingleThreadAndAsmSwitch(t *testing.T) {
	prevProcs := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prevProcs)
	prev := UseAssembly(false)
	defer UseAssembly(prev)
	if KernelName() != genericKernel.name {
		t.Fatalf("UseAssembly(false): kernel %s", KernelName())
	}
	cs := gemmCase{false, true, 70, 90, 130, 1, 0.5, 1}
	want := runGemm(cs, 1, sgemmNaive)
	compareC(t, "generic-1proc", cs, runGemm(cs, 1, Sgemm), want)
	UseAssembly(true)
	compareC(t, KernelName()+"-1proc", cs, runGemm(cs, 1, Sgemm), want)
}

func TestSgemmDegenerate(t *testing.T) {
	// k == 0: C = beta*C; beta == 0 clears NaNs.
	c := []float32{float32(math.NaN()), 2}
	Sgemm(false, false, 1, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
	if c[0] != 0 || c[1] != 0 {
		t.Fatalf("k=0 beta=0: %v", c)
	}
	c = []float32{1, 2}
	Sgemm(false, false, 1, 2, 0, 1, nil, 1, nil, 2, 3, c, 2)
	if c[0] != 3 || c[1] != 6 {
		t.Fatalf("k=0 beta=3: %v", c)
	}
	// alpha == 0 does not read A or B values.
	a := []float32{float32(math.Inf(1))}
	c = []float32{1}
	Sgemm(false, false, 1, 1, 1, 0, a, 1, a, 1, 2, c, 1)
	if c[0] != 2 {
		t.Fatalf("alpha=0: %v", c)
	}
	// m == 0 or n == 0: nothing happens.
	Sgemm(false, false, 0, 5, 3, 1, nil, 3, make([]float32, 15), 5, 0, nil, 5)
}

func TestSgemmBadArguments(t *testing.T) {
	cases := []func(){
		func() {
			Sgemm(false, false, 2, 2, 2, 1, make([]float32, 3), 2, make([]float32, 4), 2, 0, make([]float32, 4), 2)
		},
		func() {
			Sgemm(false, false, 2, 2, 2, 1, make([]float32, 4), 1, make([]float32, 4), 2, 0, make([]float32, 4), 2)
		},
		func() {
			Sgemm(false, true, 2, 3, 2, 1, make([]float32, 4), 2, make([]float32, 4), 2, 0, make([]float32, 6), 3)
		},
		func() { Sgemm(false, false, -1, 2, 2, 1, nil, 2, nil, 2, 0, nil, 2) },
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

func TestTranspose8(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	src := randSlice(r, 8*11)
	for _, ldd := range []int{8, 13, 48} {
		got := make([]float32, 8*ldd)
		want := make([]float32, 8*ldd)
		transpose8(src[3:], 11, got, ldd)
		for i := 0; i < 8; i++ {
			for j := 0; j < 8; j++ {
				want[j*ldd+i] = src[3+i*11+j]
			}
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("ldd %d: [%d] = %v, want %v", ldd, i, got[i], want[i])
			}
		}
	}
}

func TestPack6(t *testing.T) {
	r := rand.New(rand.NewSource(10))
	src := randSlice(r, 6*11)
	for _, f := range []struct {
		name string
		fn   func([]float32, int, []float32)
	}{{"go", pack6Go}, {"active", pack6}} {
		// dst has a guard value after the 48 outputs: nothing past dst[47]
		// may be written.
		got := make([]float32, 49)
		got[48] = 7
		f.fn(src[3:], 11, got)
		for j := 0; j < 8; j++ {
			for i := 0; i < 6; i++ {
				if w := src[3+i*11+j]; got[j*6+i] != w {
					t.Fatalf("%s: dst[%d] = %v, want %v", f.name, j*6+i, got[j*6+i], w)
				}
			}
		}
		if got[48] != 7 {
			t.Fatalf("%s: wrote past the block: %v", f.name, got[48])
		}
	}
}

// TestSgemmParallelSharedA runs products split over n with A packed once
// for all tasks (prepackA), at GOMAXPROCS 4 whatever the machine, with the
// real and with tiny cache blocks (several k and m blocks, partial panels).
func TestSgemmParallelSharedA(t *testing.T) {
	testSharedPack(t, "sharedA", [][3]int{{64, 600, 576}, {37, 1000, 513}, {130, 700, 300}}, func(m, n, k int) bool {
		return n >= m && m*k >= prepackMin
	})
}

// TestSgemmParallelSharedB is TestSgemmParallelSharedA for products split
// over m (B packed once by prepackB), including several nc blocks.
func TestSgemmParallelSharedB(t *testing.T) {
	testSharedPack(t, "sharedB", [][3]int{{600, 64, 576}, {1000, 37, 513}, {700, 130, 300}, {900, 200, 100}}, func(m, n, k int) bool {
		return m > n && n*k >= prepackMin
	})
}

// testSharedPack runs the sizes (m, n, k), each of which must take the
// shared-packing path (takes), in the four transpose combinations.
func testSharedPack(t *testing.T, what string, sizes [][3]int, takes func(m, n, k int) bool) {
	prev := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(prev)
	var kerns []*microKernel
	for _, k := range allKernels(t) {
		small := *k
		small.mc, small.kc, small.nc = 2*k.mr, 13, 3*k.nr
		kerns = append(kerns, k, &small)
	}
	for si, s := range sizes {
		if !takes(s[0], s[1], s[2]) {
			t.Fatalf("size %v does not take the %s path", s, what)
		}
		for tr := 0; tr < 4; tr++ {
			cs := gemmCase{tr&1 != 0, tr&2 != 0, s[0], s[1], s[2], 1, float32(tr % 2), tr % 3}
			want := runGemm(cs, int64(si), sgemmNaive)
			for _, kern := range kerns {
				compareC(t, kern.name+"-"+what, cs, runGemm(cs, int64(si), withKernel(kern)), want)
			}
		}
	}
}
