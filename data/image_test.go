package data

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quadrant colours of the displayed test picture: 24 wide, 16 high, split
// into a 2x2 grid of 12x8 blocks.
var quadColours = [4]color.RGBA{{220, 30, 30, 255}, {30, 200, 40, 255}, {30, 40, 220, 255}, {230, 230, 40, 255}}

func displayedPicture() *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, 24, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 24; x++ {
			m.SetRGBA(x, y, quadColours[(y/8)*2+x/12])
		}
	}
	return m
}

// Independent geometric helpers used to build the stored picture of each
// EXIF orientation (the inverse of what the decoder must apply).
func remap(src *image.RGBA, w, h int, f func(x, y int) (int, int)) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			sx, sy := f(x, y)
			out.Set(x, y, src.At(sx, sy))
		}
	}
	return out
}

func flipH(m *image.RGBA) *image.RGBA {
	w, h := m.Bounds().Dx(), m.Bounds().Dy()
	return remap(m, w, h, func(x, y int) (int, int) { return w - 1 - x, y })
}
func flipV(m *image.RGBA) *image.RGBA {
	w, h := m.Bounds().Dx(), m.Bounds().Dy()
	return remap(m, w, h, func(x, y int) (int, int) { return x, h - 1 - y })
}

// rotCW rotates 90 degrees clockwise: the top row becomes the right column.
func rotCW(m *image.RGBA) *image.RGBA {
	w, h := m.Bounds().Dx(), m.Bounds().Dy()
	return remap(m, h, w, func(x, y int) (int, int) { return y, h - 1 - x })
}
func rotCCW(m *image.RGBA) *image.RGBA { return rotCW(rotCW(rotCW(m))) }

// withExif inserts an APP1 Exif segment with the orientation tag after SOI.
func withExif(jpg []byte, orient int, bo binary.ByteOrder) []byte {
	var t bytes.Buffer
	if bo == binary.LittleEndian {
		t.WriteString("II")
	} else {
		t.WriteString("MM")
	}
	w16 := func(v uint16) { binary.Write(&t, bo, v) }
	w32 := func(v uint32) { binary.Write(&t, bo, v) }
	w16(42)
	w32(8)
	w16(2) // two entries: an unrelated tag first, then orientation
	w16(0x010F)
	w16(2)
	w32(4)
	w32(0x41424300)
	w16(0x0112)
	w16(3)
	w32(1)
	w16(uint16(orient))
	w16(0)
	w32(0)
	seg := append([]byte("Exif\x00\x00"), t.Bytes()...)
	out := []byte{0xFF, 0xD8, 0xFF, 0xE1, byte((len(seg) + 2) >> 8), byte(len(seg) + 2)}
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func encJPEG(t *testing.T, m image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func checkQuadrants(t *testing.T, name string, m *Image) {
	t.Helper()
	if m.W != 24 || m.H != 16 || m.C != 3 {
		t.Fatalf("%s: size %dx%dx%d, want 3x16x24", name, m.C, m.H, m.W)
	}
	for q, c := range quadColours {
		x, y := (q%2)*12+6, (q/2)*8+4
		want := [3]float32{float32(c.R), float32(c.G), float32(c.B)}
		for ch := 0; ch < 3; ch++ {
			if d := math.Abs(float64(m.At(ch, y, x) - want[ch])); d > 12 {
				t.Errorf("%s: quadrant %d channel %d = %v, want %v", name, q, ch, m.At(ch, y, x), want[ch])
			}
		}
	}
}

func TestEXIFOrientations(t *testing.T) {
	p := displayedPicture()
	stored := map[int]*image.RGBA{
		1: p,
		2: flipH(p),
		3: flipV(flipH(p)),
		4: flipV(p),
		5: flipH(rotCW(p)), // transpose
		6: rotCCW(p),
		7: flipH(rotCCW(p)), // transverse
		8: rotCW(p),
	}
	for o := 1; o <= 8; o++ {
		for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			b := withExif(encJPEG(t, stored[o]), o, bo)
			if got := JPEGOrientation(b); got != o {
				t.Fatalf("orientation %d read as %d", o, got)
			}
			m, err := DecodeImageBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			checkQuadrants(t, "orientation "+string(rune('0'+o)), m)
		}
	}
	// DecodeImageRaw ignores the tag.
	raw := filepath.Join(t.TempDir(), "o6.jpg")
	if err := os.WriteFile(raw, withExif(encJPEG(t, stored[6]), 6, binary.BigEndian), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := DecodeImageRaw(raw); err != nil || m.H != 24 || m.W != 16 {
		t.Errorf("raw decode: %v", err)
	}
	if m, err := DecodeImage(raw); err != nil || m.H != 16 || m.W != 24 {
		t.Errorf("oriented decode: %v", err)
	}
	// No EXIF: orientation 1.
	if JPEGOrientation(encJPEG(t, p)) != 1 {
		t.Error("plain JPEG orientation != 1")
	}
	// Truncated / bogus EXIF is ignored, not a crash.
	b := withExif(encJPEG(t, p), 6, binary.LittleEndian)
	if JPEGOrientation(b[:30]) != 1 {
		t.Error("truncated EXIF not ignored")
	}
}

func TestDecodeFormats(t *testing.T) {
	dir := t.TempDir()
	// Gray JPEG and PNG.
	g := image.NewGray(image.Rect(0, 0, 8, 4))
	for i := range g.Pix {
		g.Pix[i] = uint8(10 * i)
	}
	var pb bytes.Buffer
	if err := png.Encode(&pb, g); err != nil {
		t.Fatal(err)
	}
	m, err := DecodeImageBytes(pb.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 32; i++ {
		for c := 0; c < 3; c++ {
			if m.Pix[c*32+i] != float32(g.Pix[i]) {
				t.Fatalf("gray png pixel %d channel %d = %v", i, c, m.Pix[c*32+i])
			}
		}
	}
	gj, err := DecodeImageBytes(encJPEG(t, g))
	if err != nil {
		t.Fatal(err)
	}
	if gj.C != 3 || gj.At(0, 2, 5) != gj.At(2, 2, 5) || math.Abs(float64(gj.At(1, 2, 5))-float64(g.GrayAt(5, 2).Y)) > 8 {
		t.Errorf("gray jpeg: %v %v %v want %d", gj.At(0, 2, 5), gj.At(1, 2, 5), gj.At(2, 2, 5), g.GrayAt(5, 2).Y)
	}
	// Paletted PNG.
	pal := image.NewPaletted(image.Rect(0, 0, 3, 2), color.Palette{color.RGBA{1, 2, 3, 255}, color.RGBA{200, 100, 50, 255}})
	pal.SetColorIndex(1, 1, 1)
	pb.Reset()
	if err := png.Encode(&pb, pal); err != nil {
		t.Fatal(err)
	}
	pm, err := DecodeImageBytes(pb.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if pm.At(0, 0, 0) != 1 || pm.At(1, 0, 0) != 2 || pm.At(2, 0, 0) != 3 || pm.At(0, 1, 1) != 200 || pm.At(1, 1, 1) != 100 || pm.At(2, 1, 1) != 50 {
		t.Errorf("paletted: %v", pm.Pix)
	}
	// RGBA PNG with alpha: colour kept, alpha dropped.
	nr := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	nr.SetNRGBA(0, 0, color.NRGBA{100, 150, 200, 128})
	pb.Reset()
	if err := png.Encode(&pb, nr); err != nil {
		t.Fatal(err)
	}
	am, err := DecodeImageBytes(pb.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if am.Pix[0] != 100 || am.Pix[1] != 150 || am.Pix[2] != 200 {
		t.Errorf("nrgba: %v", am.Pix)
	}
	// 16-bit RGB PNG.
	r16 := image.NewRGBA64(image.Rect(0, 0, 1, 1))
	r16.SetRGBA64(0, 0, color.RGBA64{0x1234, 0xFF00, 0x8000, 0xFFFF})
	pb.Reset()
	if err := png.Encode(&pb, r16); err != nil {
		t.Fatal(err)
	}
	m16, err := DecodeImageBytes(pb.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if m16.Pix[0] != 0x12 || m16.Pix[1] != 0xFF || m16.Pix[2] != 0x80 {
		t.Errorf("rgba64: %v", m16.Pix)
	}
	// CMYK (Adobe) JPEG written by PIL (scripts/data_golden.py); PIL's own
	// RGB conversion gives cyan, magenta, yellow, black quadrants.
	cm, err := DecodeImage(filepath.Join("testdata", "cmyk.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	want := [4][3]float32{{0, 255, 255}, {255, 0, 255}, {255, 255, 0}, {0, 0, 0}}
	for q, w := range want {
		x, y := (q%2)*8+4, (q/2)*8+4
		for c := 0; c < 3; c++ {
			if d := math.Abs(float64(cm.At(c, y, x) - w[c])); d > 6 {
				t.Errorf("cmyk quadrant %d channel %d = %v want %v", q, c, cm.At(c, y, x), w[c])
			}
		}
	}
	// Corrupt JPEG and missing file: errors naming the file.
	full := encJPEG(t, displayedPicture())
	bad := filepath.Join(dir, "corrupt.jpg")
	if err := os.WriteFile(bad, full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeImage(bad); err == nil || !strings.Contains(err.Error(), "corrupt.jpg") {
		t.Errorf("corrupt jpeg: %v", err)
	}
	junk := filepath.Join(dir, "junk.png")
	if err := os.WriteFile(junk, []byte("not an image at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeImage(junk); err == nil || !strings.Contains(err.Error(), "junk.png") {
		t.Errorf("junk: %v", err)
	}
	if _, err := DecodeImage(filepath.Join(dir, "nope.jpg")); err == nil || !strings.Contains(err.Error(), "nope.jpg") {
		t.Errorf("missing: %v", err)
	}
}
