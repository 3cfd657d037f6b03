package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/infer"
)

// toRGBA converts a decoded [0,255] CHW RGB image to an RGBA image.
func toRGBA(m *data.Image) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	plane := m.H * m.W
	for y := 0; y < m.H; y++ {
		for x := 0; x < m.W; x++ {
			i := y*m.W + x
			o := out.PixOffset(x, y)
			for c := 0; c < 3; c++ {
				out.Pix[o+c] = clampByte(m.Pix[c*plane+i])
			}
			out.Pix[o+3] = 255
		}
	}
	return out
}

func clampByte(v float32) uint8 {
	v = float32(math.Round(float64(v)))
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// classColour gives every label its own saturated colour (hues spaced by
// the golden ratio, so neighbouring labels differ strongly).
func classColour(label int) color.RGBA {
	h := math.Mod(float64(label)*0.618033988749895, 1)
	s, v := 0.85, 0.95
	i := int(h * 6)
	f := h*6 - float64(i)
	p, q, t := v*(1-s), v*(1-f*s), v*(1-(1-f)*s)
	var r, g, b float64
	switch i % 6 {
	case 0:
		r, g, b = v, t, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, t
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = t, p, v
	default:
		r, g, b = v, p, q
	}
	return color.RGBA{uint8(r*255 + 0.5), uint8(g*255 + 0.5), uint8(b*255 + 0.5), 255}
}

// fill paints rectangle r (clipped to the image) with c.
func fill(m *image.RGBA, r image.Rectangle, c color.RGBA) {
	draw.Draw(m, r.Intersect(m.Bounds()), &image.Uniform{C: c}, image.Point{}, draw.Src)
}

// drawDetections draws the boxes of res with a score >= thresh, worst
// first so the best end up on top, each with its class name and score.
func drawDetections(m *image.RGBA, res *infer.ImageResult, labels infer.Labels, thresh float32) int {
	b := m.Bounds()
	th := max(2, min(b.Dx(), b.Dy())/200)
	face := basicfont.Face7x13
	n := 0
	for j := len(res.Boxes) - 1; j >= 0; j-- {
		if res.Scores[j] < thresh {
			continue
		}
		n++
		c := classColour(res.Labels[j])
		bx := res.Boxes[j]
		x1, y1 := int(math.Floor(float64(bx[0]))), int(math.Floor(float64(bx[1])))
		x2, y2 := int(math.Ceil(float64(bx[2]))), int(math.Ceil(float64(bx[3])))
		fill(m, image.Rect(x1, y1, x2, y1+th), c)
		fill(m, image.Rect(x1, y2-th, x2, y2), c)
		fill(m, image.Rect(x1, y1, x1+th, y2), c)
		fill(m, image.Rect(x2-th, y1, x2, y2), c)

		text := fmt.Sprintf("%s %.2f", labels.Name(res.Labels[j]), res.Scores[j])
		tw := font.MeasureString(face, text).Ceil() + 4
		lh := face.Height + 2
		// Above the box when there is room, else inside its top edge; kept
		// inside the image horizontally.
		ty := y1 - lh
		if ty < 0 {
			ty = y1
		}
		tx := x1
		if tx+tw > b.Max.X {
			tx = b.Max.X - tw
		}
		if tx < 0 {
			tx = 0
		}
		fill(m, image.Rect(tx, ty, tx+tw, ty+lh), c)
		ink := color.RGBA{255, 255, 255, 255}
		if 0.299*float64(c.R)+0.587*float64(c.G)+0.114*float64(c.B) > 150 {
			ink = color.RGBA{0, 0, 0, 255}
		}
		d := font.Drawer{Dst: m, Src: &image.Uniform{C: ink}, Face: face,
			Dot: fixed.P(tx+2, ty+1+face.Ascent)}
		d.DrawString(text)
	}
	return n
}

// writeVis decodes the image again, draws its detections and writes a PNG.
func writeVis(path string, res *infer.ImageResult, labels infer.Labels, thresh float32, ignoreEXIF bool) error {
	var img *data.Image
	var err error
	if ignoreEXIF {
		img, err = data.DecodeImageRaw(res.Path)
	} else {
		img, err = data.DecodeImage(res.Path)
	}
	if err != nil {
		return err
	}
	m := toRGBA(img)
	drawDetections(m, res, labels, thresh)
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := png.Encode(f, m); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
