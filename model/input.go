package model

import "fmt"

// Input is one batch, already resized, normalised and padded.
type Input struct {
	N, H, W int
	Images  []float32 // N x 3 x H x W
	// Sizes are each image's (h, w) after resizing, before padding.
	Sizes [][2]int
	// GT boxes (4 per box, resized image coordinates) and contiguous
	// labels (1..NumClasses-1) per image; training only.
	GT       [][]float32
	GTLabels [][]int
}

// Validate checks an input's sizes.
func (in *Input) Validate(train bool) error {
	if in.N <= 0 || in.H <= 0 || in.W <= 0 || len(in.Images) != in.N*3*in.H*in.W {
		return fmt.Errorf("model: input %dx3x%dx%d with %d values", in.N, in.H, in.W, len(in.Images))
	}
	if len(in.Sizes) != in.N {
		return fmt.Errorf("model: %d image sizes for %d images", len(in.Sizes), in.N)
	}
	if train && (len(in.GT) != in.N || len(in.GTLabels) != in.N) {
		return fmt.Errorf("model: training input needs boxes and labels for each of %d images", in.N)
	}
	if train {
		for i := range in.GT {
			if len(in.GT[i])/4 != len(in.GTLabels[i]) {
				return fmt.Errorf("model: image %d has %d boxes and %d labels", i, len(in.GT[i])/4, len(in.GTLabels[i]))
			}
		}
	}
	return nil
}
