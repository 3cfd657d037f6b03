//go:build amd64

package kd

import "golang.org/x/sys/cpu"

// haveSSIMAsm: the AVX2/FMA pointwise kernel of ssim_amd64.s runs here.
var haveSSIMAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// ssimFullAVX2 is ssimRow.full on the first n values (n a multiple of
// 4) of the rows at mux ... exy, four positions per step; c holds the
// broadcast constants (ssimVecConsts). With gmu nil no gradient is
// written. It returns the summed clamped loss terms.
//
//go:noescape
func ssimFullAVX2(c *ssimVecConsts, mux, muy, exx, eyy, exy, gmu, gxx, gxy *float64, n int) (loss float64)

// extremaAVX2 returns the minimum and maximum of d[:n] (n a positive
// multiple of 8) with extrema's NaN rule.
//
//go:noescape
func extremaAVX2(d *float32, n int) (lo, hi float32)

// tiesAVX2 counts the elements of d[:n] (n a positive multiple of 8)
// equal to lo and to hi and returns the first index of each.
//
//go:noescape
func tiesAVX2(d *float32, n int, lo, hi float32) (nlo, nhi, ilo, ihi int)
