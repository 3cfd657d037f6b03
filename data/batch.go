package data

import "fmt"

// BatchItem describes one image of a Batch.
type BatchItem struct {
	ImageID  int64  // COCO image id
	Index    int    // index in Dataset.Images
	FileName string // COCO file_name
	// OrigH, OrigW: size of the decoded (EXIF-oriented) image.
	OrigH, OrigW int
	// H, W: size after resizing (the valid region of the padded batch, top-left).
	H, W int
	// Scale is the nominal resize factor min(min/short, max/long) (float32,
	// as torchvision); ScaleX = W/OrigW and ScaleY = H/OrigH are the exact
	// per-axis factors applied to the boxes (torchvision's resize_boxes).
	Scale, ScaleX, ScaleY float32
	// Flipped is true when the image (and its boxes) were mirrored.
	Flipped bool
	// Boxes are the training targets in resized-image pixels (x1,y1,x2,y2);
	// Labels their contiguous labels 1..K.
	Boxes  [][4]float32
	Labels []int
}

// ToOriginal maps a box in resized-image pixels back to the original image
// (undoing the flip, then dividing by ScaleX/ScaleY, as torchvision's
// postprocess does), clipped to the original image.
func (it *BatchItem) ToOriginal(b [4]float32) [4]float32 {
	if it.Flipped {
		w := float32(it.W)
		b[0], b[2] = w-b[2], w-b[0]
	}
	b[0] /= it.ScaleX
	b[2] /= it.ScaleX
	b[1] /= it.ScaleY
	b[3] /= it.ScaleY
	fw, fh := float32(it.OrigW), float32(it.OrigH)
	b[0], b[2] = min(max(b[0], 0), fw), min(max(b[2], 0), fw)
	b[1], b[3] = min(max(b[1], 0), fh), min(max(b[3], 0), fh)
	return b
}

// Batch is a padded NCHW float32 batch with per-image metadata.
type Batch struct {
	// Iter is the global iteration of this batch (0-based); Epoch its epoch.
	Iter  int64
	Epoch int
	// Images holds N*C*H*W values, zero padded on the bottom and right.
	Images     []float32
	N, C, H, W int
	Items      []BatchItem
}

// Collate pads the samples (same channel count) to the batch's largest H and
// W rounded up to a multiple of sizeDivisible (<= 1: no rounding) and stacks
// them into one NCHW buffer.
func Collate(samples []*Sample, sizeDivisible int) (*Batch, error) {
	if len(samples) == 0 {
		return nil, fmt.Errorf("collate: empty batch")
	}
	c := samples[0].Image.C
	maxH, maxW := 0, 0
	for _, s := range samples {
		if s.Image.C != c {
			return nil, fmt.Errorf("collate: channel counts differ (%d and %d)", c, s.Image.C)
		}
		maxH, maxW = max(maxH, s.Image.H), max(maxW, s.Image.W)
	}
	if sizeDivisible > 1 {
		maxH = (maxH + sizeDivisible - 1) / sizeDivisible * sizeDivisible
		maxW = (maxW + sizeDivisible - 1) / sizeDivisible * sizeDivisible
	}
	b := &Batch{N: len(samples), C: c, H: maxH, W: maxW,
		Images: make([]float32, len(samples)*c*maxH*maxW), Items: make([]BatchItem, len(samples))}
	for n, s := range samples {
		im := s.Image
		for ch := 0; ch < c; ch++ {
			for y := 0; y < im.H; y++ {
				dst := b.Images[((n*c+ch)*maxH+y)*maxW:]
				copy(dst[:im.W], im.Pix[(ch*im.H+y)*im.W:(ch*im.H+y+1)*im.W])
			}
		}
		b.Items[n] = s.Item
	}
	return b, nil
}
