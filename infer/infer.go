// Package infer runs a trained Faster R-CNN on images: it decodes and
// transforms them as the configuration says, batches them, calls
// model.FasterRCNN.Detect, maps the boxes back to the original pixels and
// turns them into COCO results (a results JSON file, or in-memory
// cocoeval detections for an evaluation).
//
//	det, rep, err := infer.LoadModel(cfg, "model.safetensors")
//	res, bad := infer.Run(det, refs, infer.Options{Transform: infer.TransformConfig(cfg, false)}, nil)
//	err = infer.WriteResultsJSON("results.json", res, labels)
//
// EvaluateDataset does the whole COCO evaluation of a split (the trainer's
// periodic evaluation and kdeval's model mode).
package infer

import (
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/model"
)

// ToInput turns a collated batch into the detector's inference input (no
// ground truth). The images are shared, not copied.
func ToInput(b *data.Batch) *model.Input {
	in := &model.Input{N: b.N, H: b.H, W: b.W, Images: b.Images, Sizes: make([][2]int, len(b.Items))}
	for i, it := range b.Items {
		in.Sizes[i] = [2]int{it.H, it.W}
	}
	return in
}

// ToTrainInput is ToInput plus each image's ground truth: boxes (x1,y1,x2,y2
// in resized pixels, flattened) and contiguous labels from the batch items.
func ToTrainInput(b *data.Batch) *model.Input {
	in := ToInput(b)
	in.GT = make([][]float32, len(b.Items))
	in.GTLabels = make([][]int, len(b.Items))
	for i, it := range b.Items {
		gt := make([]float32, 0, 4*len(it.Boxes))
		for _, bx := range it.Boxes {
			gt = append(gt, bx[0], bx[1], bx[2], bx[3])
		}
		in.GT[i] = gt
		in.GTLabels[i] = append([]int{}, it.Labels...)
	}
	return in
}

// TransformConfig maps the configuration's input section onto the data
// package's transform. Training uses every input.min_size (one drawn per
// image) and input.flip_prob; evaluation and inference use
// input.min_size_test and never flip.
func TransformConfig(cfg *config.File, train bool) data.TransformConfig {
	in := cfg.Input
	t := data.TransformConfig{MaxSize: in.MaxSize, Format: in.Format, SizeDivisible: in.SizeDivisible}
	if train {
		t.MinSizes = append([]int{}, in.MinSize...)
		t.FlipProb = in.FlipProb
	} else {
		t.MinSizes = []int{in.MinSizeTest}
	}
	return t
}
