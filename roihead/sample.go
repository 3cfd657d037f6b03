package roihead

import (
	"fmt"

	"github.com/skd-go/skd/boxes"
)

// SampleFunc draws positives and negatives of one image from labels
// (>= 1 positive, 0 negative, -1 ignored).
type SampleFunc func(image int, labels []int) (pos, neg []int, err error)

// Sampled are one image's training RoIs: boxes (4 each), class labels (0
// background) and regression targets (4 each, RoI coder; zero for
// background rows, which the loss ignores).
type Sampled struct {
	Boxes   []float32
	Labels  []int
	Targets []float32
}

// SampleProposals appends the ground-truth boxes to the proposals, matches
// (IoU >= fg: the GT's class; < bg: background; between: ignored), samples
// and computes regression targets, as torchvision's
// RoIHeads.select_training_samples. Sampled RoIs come in index order
// (torch.where over the union of positives and negatives).
func SampleProposals(image int, proposals, gt []float32, gtLabels []int, cfg Config, sample SampleFunc) (*Sampled, error) {
	if len(gt)/4 != len(gtLabels) {
		return nil, fmt.Errorf("roi_heads: %d boxes but %d labels", len(gt)/4, len(gtLabels))
	}
	props := append(append([]float32(nil), proposals...), gt...)
	np, ng := len(props)/4, len(gt)/4
	labels := make([]int, np)
	matched := make([]int, np)
	if ng > 0 {
		iou, err := boxes.IoU(gt, props)
		if err != nil {
			return nil, err
		}
		m := boxes.Matcher{High: cfg.FgIoUThresh, Low: cfg.BgIoUThresh}
		if matched, err = m.Match(iou, ng, np); err != nil {
			return nil, err
		}
		for i, mi := range matched {
			switch {
			case mi >= 0:
				labels[i] = gtLabels[mi]
			case mi == boxes.BetweenThresholds:
				labels[i] = -1
				matched[i] = 0
			default:
				labels[i] = 0
				matched[i] = 0
			}
		}
	}
	pos, neg, err := sample(image, labels)
	if err != nil {
		return nil, fmt.Errorf("roi_heads: sampling image %d: %w", image, err)
	}
	// union in index order
	sel := make([]bool, np)
	for _, i := range pos {
		sel[i] = true
	}
	for _, i := range neg {
		sel[i] = true
	}
	s := &Sampled{}
	var ref []float32
	for i := 0; i < np; i++ {
		if !sel[i] {
			continue
		}
		s.Boxes = append(s.Boxes, props[4*i:4*i+4]...)
		s.Labels = append(s.Labels, labels[i])
		if ng > 0 {
			ref = append(ref, gt[4*matched[i]:4*matched[i]+4]...)
		} else {
			ref = append(ref, props[4*i:4*i+4]...)
		}
	}
	if len(s.Boxes) > 0 {
		if s.Targets, err = boxes.NewBoxCoder(cfg.BBoxRegWeights).Encode(ref, s.Boxes); err != nil {
			return nil, err
		}
	}
	return s, nil
}
