package kernels

// colSource packs GEMM panels straight from one image, as if from its
// im2col matrix col (C*KH*KW x OH*OW), without materialising col: the
// panels being packed are cache-sized, col would be megabytes. With trans
// the GEMM operand is col^T (OH*OW x C*KH*KW), as in the weight gradient.
type colSource struct {
	p      ConvParams
	x      []float32 // one image, C x H x W
	oh, ow int
	trans  bool
}

func newColSource(p ConvParams, x []float32, trans bool) *colSource {
	oh, ow := p.OutHW()
	return &colSource{p: p, x: x, oh: oh, ow: ow, trans: trans}
}

// segment writes col[r, j0:j0+len(dst)] into dst.
func (s *colSource) segment(r, j0 int, dst []float32) {
	p := &s.p
	v := r % p.KW
	u := (r / p.KW) % p.KH
	c := r / (p.KW * p.KH)
	xc := s.x[c*p.H*p.W : (c+1)*p.H*p.W]
	off := v * p.DilW
	jlo, jhi := colRange(s.ow, p.W, p.StrideW, p.PadW, off)
	i, jj := j0/s.ow, j0%s.ow
	for len(dst) > 0 {
		if jj == 0 && p.StrideW == 1 && len(dst) >= 2*s.ow {
			// Whole output rows: the valid input rows in one call.
			full := len(dst) / s.ow
			n := s.fullRows(xc, i, full, u, off, jlo, jhi, dst)
			dst = dst[n*s.ow:]
			i += n
			continue
		}
		cnt := min(len(dst), s.ow-jj)
		s.rowPiece(xc, i, jj, u, off, jlo, jhi, dst[:cnt])
		dst = dst[cnt:]
		i, jj = i+1, 0
	}
}

// rowPiece writes output row i, columns jj..jj+len(d) of col row (c, u, v)
// (xc is channel c, off = v*DilW, [jlo, jhi) the valid output columns).
func (s *colSource) rowPiece(xc []float32, i, jj, u, off, jlo, jhi int, d []float32) {
	p := &s.p
	cnt := len(d)
	hi := i*p.StrideH - p.PadH + u*p.DilH
	if hi < 0 || hi >= p.H {
		clear(d)
		return
	}
	a, b := max(jj, jlo), min(jj+cnt, jhi)
	if a >= b {
		clear(d)
		return
	}
	clear(d[:a-jj])
	clear(d[b-jj:])
	src := xc[hi*p.W : (hi+1)*p.W]
	base := a*p.StrideW - p.PadW + off
	if p.StrideW == 1 {
		copy(d[a-jj:b-jj], src[base:base+b-a])
		return
	}
	for q := a - jj; q < b-jj; q++ {
		d[q] = src[base]
		base += p.StrideW
	}
}

// fullRows writes whole output rows i..i+rows-1 (stride-1 columns) into
// dst: rows above or below the image are zero, the others one
// rowsPad call. It returns the rows written (rows, unless rows above the
// image end early so the caller handles the rest).
func (s *colSource) fullRows(xc []float32, i, rows, u, off, jlo, jhi int, dst []float32) int {
	p := &s.p
	ow := s.ow
	hi0 := i*p.StrideH - p.PadH + u*p.DilH
	// Rows above the image.
	top := 0
	for top < rows && hi0+top*p.StrideH < 0 {
		top++
	}
	clear(dst[:top*ow])
	// Valid rows: hi < H.
	n := 0
	for top+n < rows && hi0+(top+n)*p.StrideH < p.H {
		n++
	}
	if n > 0 {
		hi := hi0 + top*p.StrideH
		d := dst[top*ow:]
		if jlo >= jhi {
			clear(d[:n*ow])
		} else {
			base := jlo - p.PadW + off
			rowsPad(d, ow, xc[hi*p.W+base:], p.StrideH*p.W, n, jlo, jhi-jlo, ow-jhi)
		}
	}
	// Rows below the image.
	clear(dst[(top+n)*ow : rows*ow])
	return rows
}

// panelRows copies src[p*nr:(p+1)*nr] to dst[p*nr*kc:] for p < npanels:
// one k step of npanels full B panels; replaced by a SIMD version where
// available.
var panelRows = panelRowsGo

func panelRowsGo(src, dst []float32, nr, kc, npanels int) {
	for p := 0; p < npanels; p++ {
		copy(dst[p*nr*kc:p*nr*kc+nr], src[p*nr:(p+1)*nr])
	}
}

// rowsPad writes rows rows of dst (row stride ldd), each lead zeros, cnt
// values from the matching row of src (row stride lds) and trail zeros;
// replaced by a SIMD version where available.
var rowsPad = rowsPadGo

func rowsPadGo(dst []float32, ldd int, src []float32, lds, rows, lead, cnt, trail int) {
	for r := 0; r < rows; r++ {
		d := dst[r*ldd : r*ldd+lead+cnt+trail]
		clear(d[:lead])
		copy(d[lead:lead+cnt], src[r*lds:r*lds+cnt])
		clear(d[lead+cnt:])
	}
}

// pack packs rows pc..pc+kc, columns jc..jc+nc of op(B) (col or col^T)
// into nr-column panels, like packB.
func (s *colSource) pack(nr, pc, jc, kc, nc int, dst []float32, buf *gemmBuf) {
	if !s.trans {
		// One col row segment per step (per-call overhead amortised over
		// nc values, built in cache), then split into the panels.
		if cap(buf.colTmp) < nc {
			buf.colTmp = make([]float32, max(nc, nr*kc))
		}
		row := buf.colTmp[:nc]
		full := nc / nr
		for q := 0; q < kc; q++ {
			s.segment(pc+q, jc, row)
			panelRows(row, dst[q*nr:], nr, kc, full)
			for jr := full * nr; jr < nc; jr += nr {
				copyPanelRow(dst[jr*kc+q*nr:jr*kc+q*nr+nr], row[jr:], min(nr, nc-jr))
			}
		}
		return
	}
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		d := dst[jr*kc : (jr+nr)*kc]
		// op(B)[q, j] = col[jc+jr+j, pc+q]: build the cols col rows in a
		// cache-resident scratch, then transpose into the panel.
		if cap(buf.colTmp) < nr*kc {
			buf.colTmp = make([]float32, nr*kc)
		}
		tmp := buf.colTmp[:cols*kc]
		for j := 0; j < cols; j++ {
			s.segment(jc+jr+j, pc, tmp[j*kc:(j+1)*kc])
		}
		q0 := 0
		if cols%8 == 0 {
			for ; q0+8 <= kc; q0 += 8 {
				for j0 := 0; j0 < cols; j0 += 8 {
					transpose8(tmp[j0*kc+q0:], kc, d[q0*nr+j0:], nr)
				}
			}
		}
		for q := q0; q < kc; q++ {
			dp := d[q*nr : q*nr+nr]
			for j := 0; j < cols; j++ {
				dp[j] = tmp[j*kc+q]
			}
			clear(dp[cols:])
		}
	}
}

// sgemmCol computes C = op(A) * op(col) for one image (beta as in Sgemm),
// packing the im2col operand on the fly. op(col) is col (k = C*KH*KW rows,
// n = OH*OW columns) or, with trans, col^T.
func sgemmCol(transA bool, m, n, k int, a []float32, lda int, src *colSource, beta float32, c []float32, ldc int) {
	sgemmWith(activeKernel(), transA, m, n, k, 1, a, lda, bSource{col: src}, beta, c, ldc)
}
