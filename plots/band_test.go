package plots

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestBandCurves(t *testing.T) {
	p := filepath.Join(t.TempDir(), "band.png")
	s := map[string]Band{
		"none": {X: []float64{100, 200, 300}, Mean: []float64{0.1, 0.2, 0.25}, Lo: []float64{0.08, 0.18, 0.24}, Hi: []float64{0.12, 0.22, 0.26}},
		"ssim": {X: []float64{100, 200, 300}, Mean: []float64{0.12, math.NaN(), 0.3}, Lo: []float64{0.1, 0.2, 0.29}, Hi: []float64{0.14, 0.24, 0.31}},
	}
	if err := BandCurves(p, s, "AP", WithSize(320, 200)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 200 {
		t.Fatalf("image %v", b)
	}
	// The band is translucent colour: some pixels are neither white, grey
	// nor black.
	coloured := 0
	for y := 0; y < 200; y++ {
		for x := 0; x < 320; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r != g || g != b {
				coloured++
			}
		}
	}
	if coloured < 100 {
		t.Errorf("%d coloured pixels", coloured)
	}
	bad := map[string]Band{"x": {X: []float64{1, 2}, Mean: []float64{1}, Lo: []float64{1, 2}, Hi: []float64{1, 2}}}
	if err := BandCurves(p, bad, "AP"); err == nil {
		t.Error("mismatched lengths accepted")
	}
}
