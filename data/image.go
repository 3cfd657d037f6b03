package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"sync/atomic"
)

// DefaultMaxImagePixels is the default limit on width x height checked
// from an image's header before any pixel buffer is allocated: PIL's
// Image.MAX_IMAGE_PIXELS x 2, the size at which PIL refuses an image as a
// decompression bomb (178956970 pixels, about 13400 x 13400).
const DefaultMaxImagePixels = 178956970

var maxImagePixels atomic.Int64

func init() { maxImagePixels.Store(DefaultMaxImagePixels) }

// SetMaxImagePixels sets the limit on width x height that every decoder of
// this package checks from the header before decoding (config key
// data.max_image_pixels); n <= 0 restores DefaultMaxImagePixels.
func SetMaxImagePixels(n int64) {
	if n <= 0 {
		n = DefaultMaxImagePixels
	}
	maxImagePixels.Store(n)
}

// MaxImagePixels returns the current limit (see SetMaxImagePixels).
func MaxImagePixels() int64 { return maxImagePixels.Load() }

// checkHeader reads an image's dimensions from its header
// (image.DecodeConfig) and refuses sizes over MaxImagePixels, so that a
// small file claiming a huge size never allocates gigabytes.
func checkHeader(b []byte, format string) error {
	var (
		c   image.Config
		err error
	)
	if format == "jpeg" {
		c, err = jpeg.DecodeConfig(bytes.NewReader(b))
	} else {
		c, err = png.DecodeConfig(bytes.NewReader(b))
	}
	if err != nil {
		return err
	}
	if c.Width <= 0 || c.Height <= 0 {
		return fmt.Errorf("header says %dx%d pixels", c.Width, c.Height)
	}
	if n, limit := int64(c.Width)*int64(c.Height), MaxImagePixels(); n > limit {
		return fmt.Errorf("header says %dx%d = %d pixels, more than the limit of %d (data.max_image_pixels; a decompression bomb or a corrupt header?)",
			c.Width, c.Height, n, limit)
	}
	return nil
}

// Image is a float32 image in CHW layout (C planes of H rows of W values).
// DecodeImage returns RGB values in [0, 255]; the transforms normalise it.
type Image struct {
	C, H, W int
	Pix     []float32 // len C*H*W
}

// NewImage allocates a zero C x H x W image.
func NewImage(c, h, w int) *Image {
	return &Image{C: c, H: h, W: w, Pix: make([]float32, c*h*w)}
}

// At returns the value of channel c at row y, column x.
func (m *Image) At(c, y, x int) float32 { return m.Pix[(c*m.H+y)*m.W+x] }

// DecodeImage reads a JPEG or PNG file into an RGB float32 CHW image with
// values in [0, 255]. The JPEG EXIF orientation tag (APP1) is honoured, so
// the result is the image as it is meant to be displayed. Grayscale, CMYK,
// YCCK, paletted and 16-bit images are converted to RGB; alpha is dropped.
// Errors name the file.
func DecodeImage(path string) (*Image, error) { return decodeFile(path, true) }

// DecodeImageRaw is DecodeImage without applying the EXIF orientation: the
// pixels as stored (what torchvision's CocoDetection, which does not call
// exif_transpose, sees).
func DecodeImageRaw(path string) (*Image, error) { return decodeFile(path, false) }

func decodeFile(path string, orient bool) (*Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading image: %w", err)
	}
	img, err := decodeBytes(b, orient)
	if err != nil {
		return nil, fmt.Errorf("decoding image %s: %w", path, err)
	}
	return img, nil
}

// DecodeImageBytes is DecodeImage on an in-memory file.
func DecodeImageBytes(b []byte) (*Image, error) { return decodeBytes(b, true) }

func decodeBytes(b []byte, honourEXIF bool) (*Image, error) {
	var (
		src    image.Image
		err    error
		orient = 1
	)
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		if err := checkHeader(b, "jpeg"); err != nil {
			return nil, err
		}
		if honourEXIF {
			orient = JPEGOrientation(b)
		}
		src, err = jpeg.Decode(bytes.NewReader(b))
	case len(b) >= 8 && string(b[:8]) == "\x89PNG\r\n\x1a\n":
		if err := checkHeader(b, "png"); err != nil {
			return nil, err
		}
		src, err = png.Decode(bytes.NewReader(b))
	default:
		return nil, fmt.Errorf("unknown image format (neither JPEG nor PNG)")
	}
	if err != nil {
		return nil, err
	}
	return orientImage(toRGB(src), orient), nil
}

// toRGB converts any decoded image to RGB float32 CHW in [0, 255].
func toRGB(src image.Image) *Image {
	r := src.Bounds()
	w, h := r.Dx(), r.Dy()
	out := NewImage(3, h, w)
	n := w * h
	R, G, B := out.Pix[:n], out.Pix[n:2*n], out.Pix[2*n:]
	switch s := src.(type) {
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi := s.YOffset(x+r.Min.X, y+r.Min.Y)
				ci := s.COffset(x+r.Min.X, y+r.Min.Y)
				rr, gg, bb := color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				o := y*w + x
				R[o], G[o], B[o] = float32(rr), float32(gg), float32(bb)
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+w]
			for x, v := range row {
				o := y*w + x
				R[o], G[o], B[o] = float32(v), float32(v), float32(v)
			}
		}
	case *image.CMYK:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := s.Pix[y*s.Stride+4*x:]
				rr, gg, bb := color.CMYKToRGB(p[0], p[1], p[2], p[3])
				o := y*w + x
				R[o], G[o], B[o] = float32(rr), float32(gg), float32(bb)
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := s.Pix[y*s.Stride+4*x:]
				o := y*w + x
				R[o], G[o], B[o] = float32(p[0]), float32(p[1]), float32(p[2])
			}
		}
	case *image.RGBA:
		// Opaque RGBA (what decoders produce for RGB PNGs): straight copy.
		// Premultiplied translucent pixels are un-premultiplied by NRGBAModel.
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := s.Pix[y*s.Stride+4*x:]
				o := y*w + x
				if p[3] == 255 {
					R[o], G[o], B[o] = float32(p[0]), float32(p[1]), float32(p[2])
					continue
				}
				c := color.NRGBAModel.Convert(color.RGBA{p[0], p[1], p[2], p[3]}).(color.NRGBA)
				R[o], G[o], B[o] = float32(c.R), float32(c.G), float32(c.B)
			}
		}
	default:
		// Paletted, Gray16, RGBA64, NRGBA64...: colour of the pixel with
		// alpha dropped (non-premultiplied), 16-bit values reduced to 8 bits.
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.NRGBA64Model.Convert(src.At(x+r.Min.X, y+r.Min.Y)).(color.NRGBA64)
				o := y*w + x
				R[o], G[o], B[o] = float32(c.R>>8), float32(c.G>>8), float32(c.B>>8)
			}
		}
	}
	return out
}

// JPEGOrientation returns the EXIF orientation (1..8) stored in a JPEG's
// APP1 Exif segment, or 1 when there is none or it cannot be read.
func JPEGOrientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 1
	}
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return 1
		}
		marker := b[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 {
			i += 2
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan / end: no more headers
			return 1
		}
		segLen := int(binary.BigEndian.Uint16(b[i+2:]))
		if segLen < 2 || i+2+segLen > len(b) {
			return 1
		}
		seg := b[i+4 : i+2+segLen]
		if marker == 0xE1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			if o := exifOrientation(seg[6:]); o != 0 {
				return o
			}
		}
		i += 2 + segLen
	}
	return 1
}

// exifOrientation reads tag 0x0112 of IFD0 of a TIFF block; 0 if absent or invalid.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > len(t) {
		return 0
	}
	n := int(bo.Uint16(t[ifd:]))
	for k := 0; k < n; k++ {
		e := ifd + 2 + 12*k
		if e+12 > len(t) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		typ, count := bo.Uint16(t[e+2:]), bo.Uint32(t[e+4:])
		var v int
		switch {
		case typ == 3 && count >= 1: // SHORT, stored left-justified in the value field
			v = int(bo.Uint16(t[e+8:]))
		case typ == 4 && count >= 1: // LONG (non-standard but seen)
			v = int(bo.Uint32(t[e+8:]))
		default:
			return 0
		}
		if v >= 1 && v <= 8 {
			return v
		}
		return 0
	}
	return 0
}

// orientImage applies the EXIF orientation o to m (the transform that PIL's
// ImageOps.exif_transpose applies) and returns the displayed image.
func orientImage(m *Image, o int) *Image {
	if o <= 1 || o > 8 {
		return m
	}
	H, W := m.H, m.W
	oh, ow := H, W
	if o >= 5 {
		oh, ow = W, H
	}
	out := NewImage(m.C, oh, ow)
	for c := 0; c < m.C; c++ {
		src := m.Pix[c*H*W : (c+1)*H*W]
		dst := out.Pix[c*oh*ow : (c+1)*oh*ow]
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				var sy, sx int
				switch o {
				case 2: // mirror horizontal
					sy, sx = y, W-1-x
				case 3: // rotate 180
					sy, sx = H-1-y, W-1-x
				case 4: // mirror vertical
					sy, sx = H-1-y, x
				case 5: // transpose
					sy, sx = x, y
				case 6: // rotate 90 clockwise to display
					sy, sx = H-1-x, y
				case 7: // transverse
					sy, sx = H-1-x, W-1-y
				case 8: // rotate 90 counter-clockwise to display
					sy, sx = x, W-1-y
				}
				dst[y*ow+x] = src[sy*W+sx]
			}
		}
	}
	return out
}
