//go:build amd64

#include "textflag.h"

// ssimFullAVX2: the SSIM "full" terms of ssimRow.full, four positions per
// step (see ssim_plane.go for the formulas). Constants are read from c
// (rows of four: 0 C1, 32 C2, 64 eps, 96 one, 128 half, 160 gS, 192 -gS,
// 224 zero). Gradients are zeroed where the clamp blocks them.
// Registers: R8 c, SI mux, DI muy, R9 exx, R10 eyy, R11 exy, R12 gmu,
// R13 gxx, DX gxy, CX 8n, BX byte offset, Y15 the loss lanes.

// func ssimFullAVX2(c *ssimVecConsts, mux, muy, exx, eyy, exy, gmu, gxx, gxy *float64, n int) (loss float64)
TEXT ·ssimFullAVX2(SB), NOSPLIT, $0-88
	MOVQ c+0(FP), R8
	MOVQ mux+8(FP), SI
	MOVQ muy+16(FP), DI
	MOVQ exx+24(FP), R9
	MOVQ eyy+32(FP), R10
	MOVQ exy+40(FP), R11
	MOVQ gmu+48(FP), R12
	MOVQ gxx+56(FP), R13
	MOVQ gxy+64(FP), DX
	MOVQ n+72(FP), CX
	SHLQ $3, CX
	XORQ BX, BX
	VXORPD Y15, Y15, Y15

loop:
	CMPQ BX, CX
	JGE  done
	VMOVUPD (SI)(BX*1), Y0              // mx
	VMOVUPD (DI)(BX*1), Y1              // my
	VMOVUPD (R9)(BX*1), Y2
	VFNMADD231PD Y0, Y0, Y2             // sx = exx - mx mx
	VMOVUPD (R10)(BX*1), Y3
	VFNMADD231PD Y1, Y1, Y3             // sy = eyy - my my
	VMOVUPD (R11)(BX*1), Y4
	VFNMADD231PD Y1, Y0, Y4             // sxy = exy - mx my
	VADDPD Y0, Y0, Y5                   // 2 mx
	VMOVUPD 0(R8), Y6
	VFMADD231PD Y1, Y5, Y6              // a1 = 2 mx my + C1
	VADDPD Y4, Y4, Y4
	VADDPD 32(R8), Y4, Y4               // a2 = 2 sxy + C2
	VMULPD Y1, Y1, Y7
	VADDPD 0(R8), Y7, Y7
	VFMADD231PD Y0, Y0, Y7              // b1 = mx mx + my my + C1
	VADDPD Y3, Y2, Y8
	VADDPD 32(R8), Y8, Y8               // b2 = sx + sy + C2
	VMOVUPD 64(R8), Y2
	VFMADD231PD Y8, Y7, Y2              // den = b1 b2 + eps
	VMOVUPD 96(R8), Y3
	VDIVPD Y2, Y3, Y2                   // id = 1 / den
	VMULPD Y4, Y6, Y3
	VMULPD Y2, Y3, Y3                   // v = a1 a2 id
	VMOVUPD 96(R8), Y5
	VSUBPD Y3, Y5, Y5
	VMULPD 128(R8), Y5, Y5              // l = (1 - v) / 2
	VCMPPD $0x1d, 224(R8), Y5, Y9       // l >= 0 (ordered)
	VCMPPD $0x12, 96(R8), Y5, Y10       // l <= 1 (ordered)
	VANDPD Y10, Y9, Y9                  // pass
	VXORPD Y10, Y10, Y10
	VMAXPD Y5, Y10, Y10                 // 0 > l ? 0 : l (NaN stays)
	VMOVUPD 96(R8), Y11
	VMINPD Y10, Y11, Y10                // 1 < . ? 1 : .
	VADDPD Y10, Y15, Y15
	TESTQ R12, R12
	JEQ  next
	VADDPD Y6, Y6, Y6
	VMULPD Y2, Y6, Y6                   // dSxy = 2 a1 id
	VMULPD Y7, Y3, Y7
	VMULPD Y2, Y7, Y7                   // P = v b1 id = -dSx
	VMULPD Y1, Y4, Y4
	VADDPD Y4, Y4, Y4                   // 2 my a2
	VMULPD Y0, Y8, Y8
	VMULPD Y3, Y8, Y8
	VADDPD Y8, Y8, Y8                   // 2 v mx b2
	VSUBPD Y8, Y4, Y4
	VMULPD Y2, Y4, Y4                   // dMu
	VADDPD Y0, Y0, Y5
	VFMADD231PD Y7, Y5, Y4              // dMu - 2 mx dSx
	VFNMADD231PD Y6, Y1, Y4             // ... - my dSxy
	VMULPD 160(R8), Y4, Y4
	VANDPD Y9, Y4, Y4
	VMOVUPD Y4, (R12)(BX*1)             // gmu
	VMULPD 192(R8), Y7, Y7
	VANDPD Y9, Y7, Y7
	VMOVUPD Y7, (R13)(BX*1)             // gxx = gS dSx
	VMULPD 160(R8), Y6, Y6
	VANDPD Y9, Y6, Y6
	VMOVUPD Y6, (DX)(BX*1)              // gxy = gS dSxy

next:
	ADDQ $32, BX
	JMP  loop

done:
	VEXTRACTF128 $1, Y15, X0
	VADDPD X0, X15, X0
	VPERMILPD $1, X0, X1
	VADDSD X1, X0, X0
	VZEROUPPER
	MOVSD X0, loss+80(FP)
	RET

// func extremaAVX2(d *float32, n int) (lo, hi float32)
// The minimum and maximum of d[:n], n a positive multiple of 8, in eight
// lanes started at d[0]: min(x, run) keeps run when x is NaN or ties.
TEXT ·extremaAVX2(SB), NOSPLIT, $0-24
	MOVQ d+0(FP), SI
	MOVQ n+8(FP), CX
	SHLQ $2, CX
	VBROADCASTSS (SI), Y0
	VMOVAPS Y0, Y1
	XORQ BX, BX

eloop:
	VMOVUPS (SI)(BX*1), Y2
	VMINPS Y0, Y2, Y0                   // x < lo ? x : lo
	VMAXPS Y1, Y2, Y1                   // x > hi ? x : hi
	ADDQ $32, BX
	CMPQ BX, CX
	JLT  eloop
	VEXTRACTF128 $1, Y0, X2
	VMINPS X2, X0, X0
	VEXTRACTF128 $1, Y1, X3
	VMAXPS X3, X1, X1
	VPERMILPS $0x4e, X0, X2
	VMINPS X2, X0, X0
	VPERMILPS $0x4e, X1, X3
	VMAXPS X3, X1, X1
	VPERMILPS $0xb1, X0, X2
	VMINPS X2, X0, X0
	VPERMILPS $0xb1, X1, X3
	VMAXPS X3, X1, X1
	VZEROUPPER
	MOVSS X0, lo+16(FP)
	MOVSS X1, hi+20(FP)
	RET

// func tiesAVX2(d *float32, n int, lo, hi float32) (nlo, nhi, ilo, ihi int)
// How many of d[:n] (n a positive multiple of 8) equal lo and hi and the
// first index of each (0 when none), eight at a time; blocks without a
// match cost one compare pair and a test.
TEXT ·tiesAVX2(SB), NOSPLIT, $0-56
	MOVQ d+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS lo+16(FP), Y0
	VBROADCASTSS hi+20(FP), Y1
	XORQ BX, BX                         // element index
	XORQ R8, R8                         // nlo
	XORQ R9, R9                         // nhi
	XORQ R10, R10                       // ilo
	XORQ R11, R11                       // ihi

tloop:
	VMOVUPS (SI)(BX*4), Y2
	VCMPPS $0, Y0, Y2, Y3               // x == lo (ordered)
	VCMPPS $0, Y1, Y2, Y4               // x == hi
	VORPS Y4, Y3, Y5
	VPTEST Y5, Y5
	JNE  tmatch

tnext:
	ADDQ $8, BX
	CMPQ BX, CX
	JLT  tloop
	VZEROUPPER
	MOVQ R8, nlo+24(FP)
	MOVQ R9, nhi+32(FP)
	MOVQ R10, ilo+40(FP)
	MOVQ R11, ihi+48(FP)
	RET

tmatch:
	VMOVMSKPS Y3, AX
	TESTQ AX, AX
	JEQ  thi
	TESTQ R8, R8
	JNE  tlocount
	BSFQ AX, R10
	ADDQ BX, R10

tlocount:
	POPCNTQ AX, DX
	ADDQ DX, R8

thi:
	VMOVMSKPS Y4, AX
	TESTQ AX, AX
	JEQ  tnext
	TESTQ R9, R9
	JNE  thicount
	BSFQ AX, R11
	ADDQ BX, R11

thicount:
	POPCNTQ AX, DX
	ADDQ DX, R9
	JMP  tnext
