package kernels

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices.
//
// op(A) is m x k (A is m x k with leading dimension lda, or k x m when
// transA), op(B) is k x n (B is k x n with leading dimension ldb, or n x k
// when transB), C is m x n with leading dimension ldc. When beta == 0, C is
// overwritten without being read (NaNs in C do not propagate).
//
// The implementation packs A and B into cache-sized panels, runs a register
// tiled micro-kernel (AVX2/FMA assembly when the CPU has it, pure Go
// otherwise, see UseAssembly) and splits large products over
// runtime.GOMAXPROCS cores. Slices too short for the given sizes and leading
// dimensions are a programming error and panic with a message naming the
// argument (the assembly never reads out of bounds).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if err := checkSgemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc); err != nil {
		panic(err) // programmer error: callers pass consistent sizes
	}
	sgemmWith(activeKernel(), transA, m, n, k, alpha, a, lda, bSource{trans: transB, b: b, ldb: ldb}, beta, c, ldc)
}

// bSource is where the packing routine reads op(B) from: a stored matrix
// (b, ldb, trans) or, when col is set, an implicit im2col matrix built on
// the fly from an image. j0 offsets the columns of op(B) (a task's share).
type bSource struct {
	trans bool
	b     []float32
	ldb   int
	col   *colSource
	j0    int
}

// pack packs rows pc..pc+kc, columns jc..jc+nc of op(B) into nr-column
// panels.
func (s *bSource) pack(nr, pc, jc, kc, nc int, dst []float32, buf *gemmBuf) {
	if s.col != nil {
		s.col.pack(nr, pc, s.j0+jc, kc, nc, dst, buf)
		return
	}
	packB(nr, s.trans, s.b, s.ldb, pc, s.j0+jc, kc, nc, dst)
}

// checkSgemm validates sizes, leading dimensions and slice lengths.
func checkSgemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) error {
	if m < 0 || n < 0 || k < 0 {
		return fmt.Errorf("kernels.Sgemm: negative size m=%d n=%d k=%d", m, n, k)
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	if err := checkMat("A", a, ar, ac, lda); err != nil {
		return err
	}
	if err := checkMat("B", b, br, bc, ldb); err != nil {
		return err
	}
	return checkMat("C", c, m, n, ldc)
}

func checkMat(name string, x []float32, rows, cols, ld int) error {
	if ld < max(1, cols) {
		return fmt.Errorf("kernels.Sgemm: leading dimension of %s is %d, want >= %d", name, ld, max(1, cols))
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		return fmt.Errorf("kernels.Sgemm: %s has %d elements, a %dx%d matrix with leading dimension %d needs %d", name, len(x), rows, cols, ld, need)
	}
	return nil
}

// sgemmNaive is the reference implementation the fast paths are tested
// against.
func sgemmNaive(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}

// microKernel is one register-tiled inner kernel: it computes an mr x nr
// tile C = alpha*Ap*Bp + beta*C from packed panels Ap (kc x mr, mr values per
// step) and Bp (kc x nr). With beta == 0, C is not read.
type microKernel struct {
	name   string
	mr, nr int
	mc, kc int // cache blocking: A block mc x kc (L2), B micro-panel kc x nr (L1)
	nc     int // B block kc x nc (L3)
	fn     func(kc int, a, b, c []float32, ldc int, alpha, beta float32)
}

// useAsm selects the assembly micro-kernel when the CPU supports it.
var useAsm atomic.Bool

// UseAssembly switches the SIMD assembly kernels (the SGEMM micro-kernel,
// FIR64, and those of other packages that ask AssemblyOn) on or off and
// returns the previous setting. Switching it on has no effect on CPUs (or
// architectures) without AVX2 and FMA. The environment variable SKD_NOASM=1
// switches it off at start-up. Intended for tests and benchmarks.
func UseAssembly(on bool) (previous bool) {
	return useAsm.Swap(on && asmKernel != nil)
}

// AssemblyOn reports whether the SIMD assembly kernels are in use (see
// UseAssembly), for packages with assembly of their own.
func AssemblyOn() bool { return useAsm.Load() }

// KernelName names the micro-kernel Sgemm currently uses.
func KernelName() string { return activeKernel().name }

func activeKernel() *microKernel {
	if useAsm.Load() && asmKernel != nil {
		return asmKernel
	}
	return genericKernel
}

// gemmBuf holds one worker's packing buffers.
type gemmBuf struct {
	a, b, tmp []float32
	colTmp    []float32 // implicit im2col rows before transposing (nr x kc)
}

var gemmBufs = sync.Pool{New: func() any { return new(gemmBuf) }}

func (g *gemmBuf) grow(kern *microKernel) {
	if na := kern.mc * kern.kc; cap(g.a) < na {
		g.a = make([]float32, na)
	}
	if nb := kern.nc * kern.kc; cap(g.b) < nb {
		g.b = make([]float32, nb)
	}
	if nt := kern.mr * kern.nr; cap(g.tmp) < nt {
		g.tmp = make([]float32, nt)
	}
}

// parallelMinFlops is the size (m*n*k) under which Sgemm stays on the
// calling goroutine.
const parallelMinFlops = 48 * 48 * 48

func sgemmWith(kern *microKernel, transA bool, m, n, k int, alpha float32, a []float32, lda int, bs bSource, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleMat(c, m, n, ldc, beta)
		return
	}
	if beta == 0 {
		beta = 0 // -0 -> +0: the kernels test the bit pattern
	}
	nt := runtime.GOMAXPROCS(0)
	if nt == 1 || m*n*k < parallelMinFlops {
		buf := gemmBufs.Get().(*gemmBuf)
		buf.grow(kern)
		gemmBlocked(kern, transA, m, n, k, alpha, a, lda, nil, &bs, nil, beta, c, ldc, buf)
		gemmBufs.Put(buf)
		return
	}
	// Split the larger of m and n: splitting n makes every task pack all of
	// A (m*k), splitting m makes every task pack all of B (k*n).
	splitN := n >= m
	dim, align, minChunk := m, kern.mr, 4*kern.mr
	if splitN {
		dim, align, minChunk = n, kern.nr, 2*kern.nr
	}
	chunks := min(2*nt, max(1, dim/minChunk))
	if chunks <= 1 {
		buf := gemmBufs.Get().(*gemmBuf)
		buf.grow(kern)
		gemmBlocked(kern, transA, m, n, k, alpha, a, lda, nil, &bs, nil, beta, c, ldc, buf)
		gemmBufs.Put(buf)
		return
	}
	step := (dim + chunks - 1) / chunks
	step = (step + align - 1) / align * align
	chunks = (dim + step - 1) / step
	// Splitting n, every task would pack all of A, splitting m all of B
	// (for a convolution the costlier im2col packing): pack it once,
	// shared.
	var apre, bpre []float32
	var preBuf *[]float32
	mPad, nPad := (m+kern.mr-1)/kern.mr*kern.mr, (n+kern.nr-1)/kern.nr*kern.nr
	if splitN && m*k >= prepackMin && mPad*k <= prepackMax {
		preBuf, apre = prepackA(kern, transA, m, k, a, lda)
	} else if !splitN && n*k >= prepackMin && nPad*k <= prepackMax {
		preBuf, bpre = prepackB(kern, n, k, &bs)
	}
	gemmParallel(chunks, func(t int) {
		lo := t * step
		hi := min(dim, lo+step)
		buf := gemmBufs.Get().(*gemmBuf)
		buf.grow(kern)
		if splitN {
			sub := bs
			sub.j0 += lo
			gemmBlocked(kern, transA, m, hi-lo, k, alpha, a, lda, apre, &sub, nil, beta, c[lo:], ldc, buf)
		} else {
			var as []float32
			if transA {
				as = a[lo:]
			} else {
				as = a[lo*lda:]
			}
			gemmBlocked(kern, transA, hi-lo, n, k, alpha, as, lda, nil, &bs, bpre, beta, c[lo*ldc:], ldc, buf)
		}
		gemmBufs.Put(buf)
	})
	if preBuf != nil {
		prePool.Put(preBuf)
	}
}

// A parallel product packs the operand that every task would need whole
// once, shared, when it has at least prepackMin values (below, packing it
// per task costs less than the extra pass) and at most prepackMax (16 MB;
// larger operands, as fc6's input, are packed per task in cache-sized
// blocks rather than held whole).
const (
	prepackMin = 16 * 1024
	prepackMax = 4 << 20
)

var prePool = sync.Pool{New: func() any { return new([]float32) }}

// prepackB packs all of op(B) (k x n) in the layout gemmBlocked reads with
// bpre: block (jc, pc) of ncPad x kc values from offset jc*k + pc*ncPad,
// ncPad the block's width rounded up to nr. The panels are packed in
// parallel.
func prepackB(kern *microKernel, n, k int, bs *bSource) (*[]float32, []float32) {
	nr := kern.nr
	nPad := (n + nr - 1) / nr * nr
	kcb := kBlock(kern, k)
	bp := prePool.Get().(*[]float32)
	if cap(*bp) < nPad*k {
		*bp = make([]float32, nPad*k)
	}
	dst := (*bp)[:nPad*k]
	type task struct{ jc, nc, pc, kc, j0, j1 int }
	var tasks []task
	const group = 8 // panels per task
	for jc := 0; jc < n; jc += kern.nc {
		nc := min(kern.nc, n-jc)
		for pc := 0; pc < k; pc += kcb {
			for j0 := 0; j0 < nc; j0 += group * nr {
				tasks = append(tasks, task{jc, nc, pc, min(kcb, k-pc), j0, min(nc, j0+group*nr)})
			}
		}
	}
	gemmParallel(len(tasks), func(t int) {
		tk := tasks[t]
		buf := gemmBufs.Get().(*gemmBuf)
		ncPad := (tk.nc + nr - 1) / nr * nr
		off := tk.jc*k + tk.pc*ncPad + tk.j0*tk.kc
		w := ((tk.j1 - tk.j0 + nr - 1) / nr) * nr
		bs.pack(nr, tk.pc, tk.jc+tk.j0, tk.kc, tk.j1-tk.j0, dst[off:off+w*tk.kc], buf)
		gemmBufs.Put(buf)
	})
	return bp, dst
}

// prepackA packs all of op(A) (m x k) in the layout gemmBlocked reads with
// apre: k block pc (of kBlock size kc) holds mPad*kc values from offset
// pc*mPad, the panels of rows ic.. starting at pc*mPad + ic*kc. The panels
// are packed in parallel.
func prepackA(kern *microKernel, transA bool, m, k int, a []float32, lda int) (*[]float32, []float32) {
	mr := kern.mr
	mPad := (m + mr - 1) / mr * mr
	kcb := kBlock(kern, k)
	bp := prePool.Get().(*[]float32)
	if cap(*bp) < mPad*k {
		*bp = make([]float32, mPad*k)
	}
	dst := (*bp)[:mPad*k]
	const group = 16 // row panels per task
	rowsPer := group * mr
	groups := (m + rowsPer - 1) / rowsPer
	kblocks := (k + kcb - 1) / kcb
	gemmParallel(groups*kblocks, func(t int) {
		pc := (t / groups) * kcb
		ic := (t % groups) * rowsPer
		kc := min(kcb, k-pc)
		mc := min(rowsPer, m-ic)
		off := pc*mPad + ic*kc
		packA(mr, transA, a, lda, ic, pc, mc, kc, dst[off:off+((mc+mr-1)/mr)*mr*kc])
	})
	return bp, dst
}

// scaleMat sets C = beta*C (C = 0 when beta == 0, without reading C).
func scaleMat(c []float32, m, n, ldc int, beta float32) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
		} else if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// kBlock returns the k block size: equal blocks (576 -> 3 x 192 rather than
// 256+256+64), since a short last block pays the C tile load/store for
// little work.
func kBlock(kern *microKernel, k int) int {
	kcb := kern.kc
	if nb := (k + kcb - 1) / kcb; nb > 1 {
		kcb = (k + nb - 1) / nb
		if r8 := (kcb + 7) / 8 * 8; r8 <= kern.kc {
			kcb = r8 // whole 8x8 transposes in the packing
		}
	}
	return kcb
}

// gemmBlocked is the single-threaded blocked product (GotoBLAS loop order).
// apre, when not nil, is all of op(A) already packed by prepackA (shared by
// the tasks of a parallel product); otherwise A blocks are packed here.
//
// bpre, when not nil, is all of op(B) packed by prepackB.
func gemmBlocked(kern *microKernel, transA bool, m, n, k int, alpha float32, a []float32, lda int, apre []float32, bs *bSource, bpre []float32, beta float32, c []float32, ldc int, buf *gemmBuf) {
	mr, nr := kern.mr, kern.nr
	kcb := kBlock(kern, k)
	mPad := (m + mr - 1) / mr * mr
	for jc := 0; jc < n; jc += kern.nc {
		nc := min(kern.nc, n-jc)
		for pc := 0; pc < k; pc += kcb {
			kc := min(kcb, k-pc)
			ncPad := ((nc + nr - 1) / nr) * nr
			var bp []float32
			if bpre != nil {
				off := jc*k + pc*ncPad
				bp = bpre[off : off+ncPad*kc]
			} else {
				bp = buf.b[:ncPad*kc]
				bs.pack(nr, pc, jc, kc, nc, bp, buf)
			}
			bet := beta
			if pc > 0 {
				bet = 1
			}
			for ic := 0; ic < m; ic += kern.mc {
				mc := min(kern.mc, m-ic)
				var ap []float32
				if apre != nil {
					off := pc*mPad + ic*kc
					ap = apre[off : off+((mc+mr-1)/mr)*mr*kc]
				} else {
					ap = buf.a[:((mc+mr-1)/mr)*mr*kc]
					packA(mr, transA, a, lda, ic, pc, mc, kc, ap)
				}
				for jr := 0; jr < nc; jr += nr {
					cols := min(nr, nc-jr)
					bpan := bp[jr*kc : (jr+nr)*kc]
					for ir := 0; ir < mc; ir += mr {
						rows := min(mr, mc-ir)
						apan := ap[ir*kc : (ir+mr)*kc]
						off := (ic+ir)*ldc + jc + jr
						if rows == mr && cols == nr {
							kern.fn(kc, apan, bpan, c[off:off+(mr-1)*ldc+nr], ldc, alpha, bet)
							continue
						}
						tmp := buf.tmp[:mr*nr]
						kern.fn(kc, apan, bpan, tmp, nr, alpha, 0)
						for r := 0; r < rows; r++ {
							dst := c[off+r*ldc : off+r*ldc+cols]
							src := tmp[r*nr : r*nr+cols]
							if bet == 0 {
								copy(dst, src)
							} else {
								for j := range dst {
									dst[j] = src[j] + bet*dst[j]
								}
							}
						}
					}
				}
			}
		}
	}
}

// packA packs rows ic..ic+mc, columns pc..pc+kc of op(A) into panels of mr
// rows: panel q holds kc steps of mr consecutive values (zero padded).
func packA(mr int, transA bool, a []float32, lda, ic, pc, mc, kc int, dst []float32) {
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		d := dst[ir*kc : (ir+mr)*kc]
		if transA {
			for p := 0; p < kc; p++ {
				src := a[(pc+p)*lda+ic+ir:]
				dp := d[p*mr : p*mr+mr]
				copy(dp, src[:rows])
				clear(dp[rows:])
			}
			continue
		}
		// Gather one value from each row per step: rows are read as
		// parallel sequential streams, the panel is written contiguously.
		// Full 8x8 blocks go through the SIMD transpose.
		base := (ic+ir)*lda + pc
		p0 := 0
		switch {
		case rows == mr && mr%8 == 0:
			for ; p0+8 <= kc; p0 += 8 {
				for r0 := 0; r0 < mr; r0 += 8 {
					transpose8(a[base+r0*lda+p0:], lda, d[p0*mr+r0:], mr)
				}
			}
		case rows == 6 && mr == 6:
			for ; p0+8 <= kc; p0 += 8 {
				pack6(a[base+p0:], lda, d[p0*6:])
			}
		}
		for p := p0; p < kc; p++ {
			dp := d[p*mr : p*mr+mr]
			for r := 0; r < rows; r++ {
				dp[r] = a[base+r*lda+p]
			}
			clear(dp[rows:])
		}
	}
}

// packB packs rows pc..pc+kc, columns jc..jc+nc of op(B) into panels of nr
// columns: panel q holds kc steps of nr consecutive values (zero padded).
func packB(nr int, transB bool, b []float32, ldb, pc, jc, kc, nc int, dst []float32) {
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		d := dst[jr*kc : (jr+nr)*kc]
		if !transB {
			if cols == nr {
				rowsPad(d, nr, b[pc*ldb+jc+jr:], ldb, kc, 0, nr, 0)
				continue
			}
			for p := 0; p < kc; p++ {
				copyPanelRow(d[p*nr:p*nr+nr], b[(pc+p)*ldb+jc+jr:], cols)
			}
			continue
		}
		base := (jc+jr)*ldb + pc
		p0 := 0
		if cols%8 == 0 {
			for ; p0+8 <= kc; p0 += 8 {
				for j0 := 0; j0 < cols; j0 += 8 {
					transpose8(b[base+j0*ldb+p0:], ldb, d[p0*nr+j0:], nr)
				}
			}
		}
		for p := p0; p < kc; p++ {
			dp := d[p*nr : p*nr+nr]
			for j := 0; j < cols; j++ {
				dp[j] = b[base+j*ldb+p]
			}
			clear(dp[cols:])
		}
	}
}

// copyPanelRow sets dp[:cols] = src[:cols] and zeroes the rest of dp (one
// k step of a B panel). Full rows of the assembly kernels' widths are fixed
// size copies that the compiler inlines: a runtime.memmove call per 16 or 48
// values cost ~8% of a bottleneck's time with the AVX2 kernel.
func copyPanelRow(dp, src []float32, cols int) {
	switch {
	case cols == 16 && len(dp) == 16:
		v := *(*[16]float32)(src)
		*(*[16]float32)(dp) = v
	case cols == 48 && len(dp) == 48:
		v := *(*[48]float32)(src)
		*(*[48]float32)(dp) = v
	default:
		copy(dp, src[:cols])
		clear(dp[cols:])
	}
}

// pack6 writes the transpose of the 6x8 block at src (row stride lds) to
// dst as 8 rows of 6 (the 6-row A panels of the AVX2 kernel); replaced by a
// SIMD version where available.
var pack6 = pack6Go

func pack6Go(src []float32, lds int, dst []float32) {
	for i := 0; i < 6; i++ {
		row := src[i*lds : i*lds+8]
		for j, v := range row {
			dst[j*6+i] = v
		}
	}
}

// transpose8 writes the transpose of the 8x8 block at src (row stride lds)
// to dst (row stride ldd); replaced by a SIMD version where available.
var transpose8 = transpose8Go

func transpose8Go(src []float32, lds int, dst []float32, ldd int) {
	for i := 0; i < 8; i++ {
		row := src[i*lds : i*lds+8]
		for j, v := range row {
			dst[j*ldd+i] = v
		}
	}
}
