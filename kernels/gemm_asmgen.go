//go:build ignore

// gemm_asmgen writes gemm_amd64.s: the SGEMM micro-kernels (fully unrolled
// register tiles), the 8x8 transpose used by the packing routines and the
// vector add used by col2im. Run `go generate ./kernels` after editing.
package main

import (
	"fmt"
	"os"
	"strings"
)

var out strings.Builder

func emit(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }

// kernel writes one mr x (nvec*vw) micro-kernel: C = alpha*Ap*Bp + beta*C
// (C not read when beta is +0). reg is "Y" or "Z"; bregs hold the B
// vectors, bcregs the broadcast A values, accumulators are 0..mr*nvec-1.
func kernel(name string, mr, nvec, vw int, reg, zero string, bregs, bcregs []int) {
	nr := nvec * vw
	vb := vw * 4
	r := func(i int) string { return fmt.Sprintf("%s%d", reg, i) }
	step := func(ao, bo int) {
		for v := 0; v < nvec; v++ {
			emit("\tVMOVUPS %d(DI), %s", bo+vb*v, r(bregs[v]))
		}
		for row := 0; row < mr; row++ {
			br := bcregs[row%len(bcregs)]
			emit("\tVBROADCASTSS %d(SI), %s", ao+4*row, r(br))
			for v := 0; v < nvec; v++ {
				emit("\tVFMADD231PS %s, %s, %s", r(bregs[v]), r(br), r(row*nvec+v))
			}
		}
	}
	emit("// func %s(kc int, a, b, c *float32, ldc int, alpha, beta float32)", name)
	emit("TEXT ·%s(SB), NOSPLIT, $0-48", name)
	emit("\tMOVQ kc+0(FP), CX")
	emit("\tMOVQ a+8(FP), SI")
	emit("\tMOVQ b+16(FP), DI")
	emit("\tMOVQ c+24(FP), DX")
	emit("\tMOVQ ldc+32(FP), R8")
	emit("\tSHLQ $2, R8")
	// Prefetch the C tile: its lines are read (beta != 0) or written at the
	// end, after kc steps that bring nothing of C into the cache.
	emit("\tMOVQ DX, R10")
	for row := 0; row < mr; row++ {
		for o := 0; o < 4*nr; o += 64 {
			emit("\tPREFETCHT0 %d(R10)", o)
		}
		emit("\tPREFETCHT0 %d(R10)", 4*nr-4)
		if row < mr-1 {
			emit("\tADDQ R8, R10")
		}
	}
	for i := 0; i < mr*nvec; i++ {
		emit("\t%s %s, %s, %s", zero, r(i), r(i), r(i))
	}
	emit("\tMOVQ CX, R9")
	emit("\tSHRQ $2, R9")
	emit("\tANDQ $3, CX")
	emit("\tTESTQ R9, R9")
	emit("\tJZ %s_tail", name)
	emit("")
	emit("%s_loop4:", name)
	for u := 0; u < 4; u++ {
		step(4*mr*u, 4*nr*u)
	}
	emit("\tADDQ $%d, SI", 16*mr)
	emit("\tADDQ $%d, DI", 16*nr)
	emit("\tDECQ R9")
	emit("\tJNZ %s_loop4", name)
	emit("")
	emit("%s_tail:", name)
	emit("\tTESTQ CX, CX")
	emit("\tJZ %s_done", name)
	emit("%s_loop1:", name)
	step(0, 0)
	emit("\tADDQ $%d, SI", 4*mr)
	emit("\tADDQ $%d, DI", 4*nr)
	emit("\tDECQ CX")
	emit("\tJNZ %s_loop1", name)
	emit("")
	emit("%s_done:", name)
	al, be := r(bregs[0]), r(bregs[1])
	emit("\tVBROADCASTSS alpha+40(FP), %s", al)
	emit("\tMOVL beta+44(FP), AX")
	emit("\tTESTL AX, AX")
	emit("\tJZ %s_nobeta", name)
	emit("\tVBROADCASTSS beta+44(FP), %s", be)
	for row := 0; row < mr; row++ {
		for v := 0; v < nvec; v++ {
			a := r(row*nvec + v)
			emit("\tVMULPS %s, %s, %s", al, a, a)
			emit("\tVFMADD231PS %d(DX), %s, %s", vb*v, be, a)
			emit("\tVMOVUPS %s, %d(DX)", a, vb*v)
		}
		if row < mr-1 {
			emit("\tADDQ R8, DX")
		}
	}
	emit("\tVZEROUPPER")
	emit("\tRET")
	emit("")
	emit("%s_nobeta:", name)
	for row := 0; row < mr; row++ {
		for v := 0; v < nvec; v++ {
			a := r(row*nvec + v)
			emit("\tVMULPS %s, %s, %s", al, a, a)
			emit("\tVMOVUPS %s, %d(DX)", a, vb*v)
		}
		if row < mr-1 {
			emit("\tADDQ R8, DX")
		}
	}
	emit("\tVZEROUPPER")
	emit("\tRET")
	emit("")
}

// transposeNet transposes the 8x8 block in rows Y0..Y7 into Y8..Y15 (row
// o of the transpose in Y(8+o)); Y0..Y7 are clobbered. Interleave row
// pairs, then 64-bit pairs, then 128-bit lanes.
func transposeNet() {
	for q := 0; q < 4; q++ {
		emit("\tVUNPCKLPS Y%d, Y%d, Y%d", 2*q+1, 2*q, 8+2*q)
		emit("\tVUNPCKHPS Y%d, Y%d, Y%d", 2*q+1, 2*q, 9+2*q)
	}
	for h := 0; h < 2; h++ {
		t0, t1, t2, t3 := 8+4*h, 9+4*h, 10+4*h, 11+4*h
		emit("\tVSHUFPS $0x44, Y%d, Y%d, Y%d", t2, t0, 4*h)
		emit("\tVSHUFPS $0xEE, Y%d, Y%d, Y%d", t2, t0, 1+4*h)
		emit("\tVSHUFPS $0x44, Y%d, Y%d, Y%d", t3, t1, 2+4*h)
		emit("\tVSHUFPS $0xEE, Y%d, Y%d, Y%d", t3, t1, 3+4*h)
	}
	for q := 0; q < 4; q++ {
		emit("\tVPERM2F128 $0x20, Y%d, Y%d, Y%d", 4+q, q, 8+q)
		emit("\tVPERM2F128 $0x31, Y%d, Y%d, Y%d", 4+q, q, 12+q)
	}
}

// transpose writes dst[j*ldd+i] = src[i*lds+j] for i, j < 8 (AVX).
func transpose() {
	emit("")
	emit("// func transpose8x8(src *float32, lds int, dst *float32, ldd int)")
	emit("TEXT ·transpose8x8(SB), NOSPLIT, $0-32")
	emit("\tMOVQ src+0(FP), SI")
	emit("\tMOVQ lds+8(FP), AX")
	emit("\tSHLQ $2, AX")
	emit("\tMOVQ dst+16(FP), DI")
	emit("\tMOVQ ldd+24(FP), BX")
	emit("\tSHLQ $2, BX")
	for i := 0; i < 8; i++ {
		emit("\tVMOVUPS (SI), Y%d", i)
		if i < 7 {
			emit("\tADDQ AX, SI")
		}
	}
	transposeNet()
	for o := 0; o < 8; o++ {
		emit("\tVMOVUPS Y%d, (DI)", 8+o)
		if o < 7 {
			emit("\tADDQ BX, DI")
		}
	}
	emit("\tVZEROUPPER")
	emit("\tRET")
}

// pack6 writes the transpose of the 6x8 block at src (row stride lds) to
// dst as 8 rows of 6 (dst[j*6+i] = src[i*lds+j]): one 8-step slice of a
// 6-row A panel of the AVX2 kernel. Same transpose network as transpose8
// with rows 6 and 7 zero; the output rows are stored with overlapping
// 8-wide stores in increasing order (each overwrites the previous one's two
// padding values), the last as 4+2 so nothing past dst[47] is written.
func pack6() {
	emit("")
	emit("// func pack6x8(src *float32, lds int, dst *float32)")
	emit("TEXT ·pack6x8(SB), NOSPLIT, $0-24")
	emit("\tMOVQ src+0(FP), SI")
	emit("\tMOVQ lds+8(FP), AX")
	emit("\tSHLQ $2, AX")
	emit("\tMOVQ dst+16(FP), DI")
	for i := 0; i < 6; i++ {
		emit("\tVMOVUPS (SI), Y%d", i)
		if i < 5 {
			emit("\tADDQ AX, SI")
		}
	}
	emit("\tVXORPS Y6, Y6, Y6")
	emit("\tVXORPS Y7, Y7, Y7")
	transposeNet()
	for o := 0; o < 7; o++ {
		emit("\tVMOVUPS Y%d, %d(DI)", 8+o, 24*o)
	}
	emit("\tVMOVUPS X15, 168(DI)")
	emit("\tVEXTRACTF128 $1, Y15, X15")
	emit("\tVMOVQ X15, 184(DI)")
	emit("\tVZEROUPPER")
	emit("\tRET")
}

// copyRowsPad writes rows of lead zeros, cnt values copied from src and
// trail zeros (AVX): the full output rows of an implicit im2col segment.
func copyRowsPad() {
	emit("")
	emit("// func copyRowsPad(dst *float32, ldd int, src *float32, lds int, rows, lead, cnt, trail int)")
	emit("TEXT ·copyRowsPad(SB), NOSPLIT, $0-64")
	for _, l := range []string{
		"\tMOVQ dst+0(FP), DI", "\tMOVQ ldd+8(FP), R8", "\tSHLQ $2, R8",
		"\tMOVQ src+16(FP), SI", "\tMOVQ lds+24(FP), R9", "\tSHLQ $2, R9",
		"\tMOVQ rows+32(FP), CX", "\tMOVQ lead+40(FP), R10", "\tMOVQ cnt+48(FP), R11", "\tMOVQ trail+56(FP), R12",
		"\tTESTQ CX, CX", "\tJLE crp_done",
		"crp_row:", "\tMOVQ DI, AX", "\tMOVQ SI, BX", "\tMOVQ R10, DX",
		"crp_lead:", "\tTESTQ DX, DX", "\tJZ crp_body", "\tMOVL $0, (AX)", "\tADDQ $4, AX", "\tDECQ DX", "\tJMP crp_lead",
		"crp_body:", "\tMOVQ R11, DX", "\tCMPQ DX, $8", "\tJLT crp_one",
		"crp_vec:", "\tVMOVUPS (BX), Y0", "\tVMOVUPS Y0, (AX)", "\tADDQ $32, AX", "\tADDQ $32, BX", "\tSUBQ $8, DX", "\tCMPQ DX, $8", "\tJGE crp_vec",
		// 1..7 values left after at least one vector: one overlapping vector
		// ending at the last value.
		"\tTESTQ DX, DX", "\tJZ crp_trail", "\tLEAQ -32(BX)(DX*4), BX", "\tLEAQ -32(AX)(DX*4), AX",
		"\tVMOVUPS (BX), Y0", "\tVMOVUPS Y0, (AX)", "\tADDQ $32, AX", "\tJMP crp_trail",
		"crp_one:", "\tTESTQ DX, DX", "\tJZ crp_trail", "\tMOVL (BX), R13", "\tMOVL R13, (AX)", "\tADDQ $4, AX", "\tADDQ $4, BX", "\tDECQ DX", "\tJMP crp_one",
		"crp_trail:", "\tMOVQ R12, DX",
		"crp_tz:", "\tTESTQ DX, DX", "\tJZ crp_next", "\tMOVL $0, (AX)", "\tADDQ $4, AX", "\tDECQ DX", "\tJMP crp_tz",
		"crp_next:", "\tADDQ R8, DI", "\tADDQ R9, SI", "\tDECQ CX", "\tJNZ crp_row",
		"crp_done:", "\tVZEROUPPER", "\tRET",
	} {
		emit("%s", l)
	}
}

// scatterPanels copies npanels consecutive blocks of nvec*8 values from src
// to dst, the blocks dstStride bytes apart (AVX): one k step of an implicit
// im2col row into the B panels.
func scatterPanels() {
	emit("")
	emit("// func scatterPanels(src, dst *float32, nvec, npanels, dstStride int)")
	emit("TEXT ·scatterPanels(SB), NOSPLIT, $0-40")
	for _, l := range []string{
		"\tMOVQ src+0(FP), SI", "\tMOVQ dst+8(FP), DI", "\tMOVQ nvec+16(FP), R8",
		"\tMOVQ npanels+24(FP), CX", "\tMOVQ dstStride+32(FP), R9",
		"\tTESTQ CX, CX", "\tJLE sp_done", "\tTESTQ R8, R8", "\tJLE sp_done",
		"sp_panel:", "\tMOVQ R8, DX", "\tMOVQ DI, AX",
		"sp_vec:", "\tVMOVUPS (SI), Y0", "\tVMOVUPS Y0, (AX)", "\tADDQ $32, SI", "\tADDQ $32, AX", "\tDECQ DX", "\tJNZ sp_vec",
		"\tADDQ R9, DI", "\tDECQ CX", "\tJNZ sp_panel",
		"sp_done:", "\tVZEROUPPER", "\tRET",
	} {
		emit("%s", l)
	}
}

// addTo writes dst[i] += src[i] for i < n (AVX).
func addTo() {
	emit("")
	emit("// func addTo(dst, src *float32, n int)")
	emit("TEXT ·addTo(SB), NOSPLIT, $0-24")
	emit("\tMOVQ dst+0(FP), DI")
	emit("\tMOVQ src+8(FP), SI")
	emit("\tMOVQ n+16(FP), CX")
	emit("\tCMPQ CX, $32")
	emit("\tJLT addTo_tail8")
	emit("addTo_loop32:")
	for v := 0; v < 4; v++ {
		emit("\tVMOVUPS %d(SI), Y%d", 32*v, v)
	}
	for v := 0; v < 4; v++ {
		emit("\tVADDPS %d(DI), Y%d, Y%d", 32*v, v, v)
	}
	for v := 0; v < 4; v++ {
		emit("\tVMOVUPS Y%d, %d(DI)", v, 32*v)
	}
	for _, l := range []string{
		"\tADDQ $128, SI", "\tADDQ $128, DI", "\tSUBQ $32, CX", "\tCMPQ CX, $32", "\tJGE addTo_loop32",
		"addTo_tail8:", "\tCMPQ CX, $8", "\tJLT addTo_tail1",
		"\tVMOVUPS (SI), Y0", "\tVADDPS (DI), Y0, Y0", "\tVMOVUPS Y0, (DI)",
		"\tADDQ $32, SI", "\tADDQ $32, DI", "\tSUBQ $8, CX", "\tJMP addTo_tail8",
		"addTo_tail1:", "\tTESTQ CX, CX", "\tJZ addTo_done",
		"\tVMOVSS (SI), X0", "\tVADDSS (DI), X0, X0", "\tVMOVSS X0, (DI)",
		"\tADDQ $4, SI", "\tADDQ $4, DI", "\tDECQ CX", "\tJMP addTo_tail1",
		"addTo_done:", "\tVZEROUPPER", "\tRET",
	} {
		emit("%s", l)
	}
}

func main() {
	emit("// Code generated by gemm_asmgen.go; DO NOT EDIT.")
	emit("")
	emit("#include \"textflag.h\"")
	emit("")
	// AVX2/FMA 6x16: Y0-Y11 accumulators, Y12-Y13 B, Y14-Y15 broadcasts.
	kernel("sgemmKernel6x16", 6, 2, 8, "Y", "VXORPS", []int{12, 13}, []int{14, 15})
	// AVX-512F 8x48: Z0-Z23 accumulators, Z24-Z26 B, Z27-Z31 broadcasts.
	kernel("sgemmKernel8x48", 8, 3, 16, "Z", "VPXORD", []int{24, 25, 26}, []int{27, 28, 29, 30, 31})
	transpose()
	pack6()
	copyRowsPad()
	scatterPanels()
	addTo()
	if err := os.WriteFile("gemm_amd64.s", []byte(out.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gemm_asmgen:", err)
		os.Exit(1)
	}
}
