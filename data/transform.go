package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Normalisation formats of TransformConfig.Format.
const (
	// FormatTorchvision: RGB scaled to [0,1], mean (.485,.456,.406), std (.229,.224,.225).
	FormatTorchvision = "torchvision"
	// FormatCaffe: BGR in [0,255], mean (103.53,116.28,123.675), std 1 (detectron2 MSRA weights).
	FormatCaffe = "caffe"
)

// TransformConfig sets resizing, flipping, normalisation and padding.
type TransformConfig struct {
	// MinSizes are the shorter-side targets. Training picks one uniformly at
	// random per image (multi-scale); evaluation uses the last one
	// (torchvision's GeneralizedRCNNTransform rule). Default {800}.
	MinSizes []int
	// MaxSize caps the longer side. Default 1333.
	MaxSize int
	// FlipProb is the probability of a horizontal flip in training (0.5 usual).
	FlipProb float64
	// Format is FormatTorchvision (default) or FormatCaffe.
	Format string
	// SizeDivisible: batch H and W are padded up to a multiple of it. Default 32.
	SizeDivisible int
}

// withDefaults fills zero fields and validates the config.
func (c TransformConfig) withDefaults() (TransformConfig, error) {
	if len(c.MinSizes) == 0 {
		c.MinSizes = []int{800}
	}
	if c.MaxSize == 0 {
		c.MaxSize = 1333
	}
	if c.Format == "" {
		c.Format = FormatTorchvision
	}
	if c.SizeDivisible == 0 {
		c.SizeDivisible = 32
	}
	for _, m := range c.MinSizes {
		if m <= 0 {
			return c, fmt.Errorf("transform: min size %d must be positive", m)
		}
	}
	if c.MaxSize < 0 || c.SizeDivisible < 0 || c.FlipProb < 0 || c.FlipProb > 1 {
		return c, fmt.Errorf("transform: invalid config (max size %d, size divisible %d, flip prob %g)",
			c.MaxSize, c.SizeDivisible, c.FlipProb)
	}
	if c.Format != FormatTorchvision && c.Format != FormatCaffe {
		return c, fmt.Errorf("transform: unknown format %q (want %q or %q)", c.Format, FormatTorchvision, FormatCaffe)
	}
	return c, nil
}

// ResizeScale implements torchvision's GeneralizedRCNNTransform size rule:
// scale = min(minSize/short, maxSize/long) computed in float32 exactly as
// torchvision does (reciprocal, then product), and the output size floor(dim*scale) computed in float64 (what
// F.interpolate does with scale_factor and recompute_scale_factor=True).
// detectron2's ResizeShortestEdge uses the same scale but rounds the size
// (int(dim*scale+0.5)); this package follows torchvision, so a 427x640 image
// with min 800 becomes 799x1199. maxSize <= 0 means no cap.
func ResizeScale(h, w, minSize, maxSize int) (scale float32, outH, outW int) {
	short, long := float32(min(h, w)), float32(max(h, w))
	// torch evaluates python_float / float32_tensor as float * (1/tensor):
	// reproduce both float32 roundings (800/480 gives 1.6666667461, not
	// the nearest float32 1.6666666269, so 480 -> 800 and not 799).
	scale = float32(float32(1/short) * float32(minSize))
	if maxSize > 0 {
		if s2 := float32(float32(1/long) * float32(maxSize)); s2 < scale {
			scale = s2
		}
	}
	outH = int(math.Floor(float64(h) * float64(scale)))
	outW = int(math.Floor(float64(w) * float64(scale)))
	return scale, max(outH, 1), max(outW, 1)
}

// lin1d holds the source indices and weights of one output coordinate.
type lin1d struct {
	i0, i1 int
	w0, w1 float32
}

// linearWeights follows PyTorch's CPU upsample kernel (align_corners=False,
// no explicit scale): ratio = in/out in float32, src = ratio*(dst+0.5)-0.5
// clamped at 0, i0 = trunc(src), i1 = i0+1 unless at the edge.
func linearWeights(in, out int) []lin1d {
	ratio := float32(in) / float32(out)
	ws := make([]lin1d, out)
	for d := range ws {
		src := float32(ratio*(float32(d)+0.5)) - 0.5
		if src < 0 {
			src = 0
		}
		i0 := int(src)
		i1 := i0
		if i0 < in-1 {
			i1 = i0 + 1
		}
		l1 := src - float32(i0)
		l1 = min(max(l1, 0), 1)
		ws[d] = lin1d{i0, i1, 1 - l1, l1}
	}
	return ws
}

// ResizeBilinear resizes every channel to outH x outW with bilinear
// interpolation matching torch.nn.functional.interpolate(mode='bilinear',
// align_corners=False, antialias=False) given the output size.
func ResizeBilinear(m *Image, outH, outW int) *Image {
	out := NewImage(m.C, outH, outW)
	wy := linearWeights(m.H, outH)
	wx := linearWeights(m.W, outW)
	for c := 0; c < m.C; c++ {
		src := m.Pix[c*m.H*m.W : (c+1)*m.H*m.W]
		dst := out.Pix[c*outH*outW : (c+1)*outH*outW]
		for y, ly := range wy {
			r0 := src[ly.i0*m.W : (ly.i0+1)*m.W]
			r1 := src[ly.i1*m.W : (ly.i1+1)*m.W]
			drow := dst[y*outW : (y+1)*outW]
			for x, lx := range wx {
				// Same association as PyTorch: h0*(w0*a + w1*b) + h1*(w0*c + w1*d);
				// explicit float32 conversions keep the compiler from fusing.
				t0 := float32(r0[lx.i0]*lx.w0) + float32(r0[lx.i1]*lx.w1)
				t1 := float32(r1[lx.i0]*lx.w0) + float32(r1[lx.i1]*lx.w1)
				drow[x] = float32(t0*ly.w0) + float32(t1*ly.w1)
			}
		}
	}
	return out
}

// FlipHorizontal mirrors the image left-right in place.
func FlipHorizontal(m *Image) {
	for r := 0; r < m.C*m.H; r++ {
		row := m.Pix[r*m.W : (r+1)*m.W]
		for i, j := 0, len(row)-1; i < j; i, j = i+1, j-1 {
			row[i], row[j] = row[j], row[i]
		}
	}
}

// FlipBoxes mirrors x1,y1,x2,y2 boxes of an image of width w in place
// (x1' = w - x2, x2' = w - x1, as torchvision's reference transforms).
func FlipBoxes(boxes [][4]float32, w int) {
	fw := float32(w)
	for i := range boxes {
		b := &boxes[i]
		b[0], b[2] = fw-b[2], fw-b[0]
	}
}

// ScaleBoxes multiplies x coordinates by sx and y coordinates by sy in place.
func ScaleBoxes(boxes [][4]float32, sx, sy float32) {
	for i := range boxes {
		b := &boxes[i]
		b[0] *= sx
		b[1] *= sy
		b[2] *= sx
		b[3] *= sy
	}
}

// Normalize converts an RGB [0,255] image in place to the given format
// (see FormatTorchvision, FormatCaffe). It expects 3 channels.
func Normalize(m *Image, format string) error {
	if m.C != 3 {
		return fmt.Errorf("normalize: want 3 channels, got %d", m.C)
	}
	n := m.H * m.W
	switch format {
	case FormatTorchvision, "":
		mean := [3]float32{0.485, 0.456, 0.406}
		std := [3]float32{0.229, 0.224, 0.225}
		for c := 0; c < 3; c++ {
			p := m.Pix[c*n : (c+1)*n]
			for i, v := range p {
				// ToTensor (v/255) then (x-mean)/std, as torchvision.
				p[i] = (v/255 - mean[c]) / std[c]
			}
		}
	case FormatCaffe:
		mean := [3]float32{103.53, 116.28, 123.675} // B, G, R
		// Swap R and B planes, then subtract the BGR mean.
		r, b := m.Pix[:n], m.Pix[2*n:]
		for i := range r {
			r[i], b[i] = b[i], r[i]
		}
		for c := 0; c < 3; c++ {
			p := m.Pix[c*n : (c+1)*n]
			for i := range p {
				p[i] -= mean[c]
			}
		}
	default:
		return fmt.Errorf("normalize: unknown format %q", format)
	}
	return nil
}

// Sample is one transformed image with its targets, ready to batch.
type Sample struct {
	Image *Image // normalised, resized CHW
	Item  BatchItem
}

// TransformSample flips (with probability cfg.FlipProb when train),
// normalises and resizes img, and maps boxes (x1,y1,x2,y2 pixels of img,
// copied, not modified) accordingly. In training the min size is drawn from
// cfg.MinSizes with rng; in evaluation the last one is used. rng may be nil
// when train is false.
func TransformSample(img *Image, boxes [][4]float32, labels []int, cfg TransformConfig, train bool, rng *rand.Rand) (*Sample, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	minSize := cfg.MinSizes[len(cfg.MinSizes)-1]
	flip := false
	if train {
		if rng == nil {
			return nil, fmt.Errorf("transform: training needs a random source")
		}
		minSize = cfg.MinSizes[rng.IntN(len(cfg.MinSizes))]
		flip = cfg.FlipProb > 0 && rng.Float64() < cfg.FlipProb
	}
	bx := make([][4]float32, len(boxes))
	copy(bx, boxes)
	lb := make([]int, len(labels))
	copy(lb, labels)
	work := &Image{C: img.C, H: img.H, W: img.W, Pix: make([]float32, len(img.Pix))}
	copy(work.Pix, img.Pix)
	if flip {
		FlipHorizontal(work)
		FlipBoxes(bx, work.W)
	}
	if err := Normalize(work, cfg.Format); err != nil {
		return nil, err
	}
	scale, oh, ow := ResizeScale(work.H, work.W, minSize, cfg.MaxSize)
	if oh != work.H || ow != work.W {
		work = ResizeBilinear(work, oh, ow)
	}
	// torchvision's resize_boxes: ratio = new/orig per axis, in float32.
	sx := float32(ow) / float32(img.W)
	sy := float32(oh) / float32(img.H)
	ScaleBoxes(bx, sx, sy)
	return &Sample{Image: work, Item: BatchItem{
		OrigH: img.H, OrigW: img.W, H: oh, W: ow, Scale: scale, ScaleX: sx, ScaleY: sy,
		Flipped: flip, Boxes: bx, Labels: lb,
	}}, nil
}
