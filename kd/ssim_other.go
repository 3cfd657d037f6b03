//go:build !amd64

package kd

const haveSSIMAsm = false

func ssimFullAVX2(c *ssimVecConsts, mux, muy, exx, eyy, exy, gmu, gxx, gxy *float64, n int) float64 {
	panic("kd: no SSIM assembly on this architecture")
}

func extremaAVX2(d *float32, n int) (lo, hi float32) {
	panic("kd: no SSIM assembly on this architecture")
}

func tiesAVX2(d *float32, n int, lo, hi float32) (nlo, nhi, ilo, ihi int) {
	panic("kd: no SSIM assembly on this architecture")
}
