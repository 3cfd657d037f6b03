package rpn

import (
	"fmt"

	"github.com/skd-go/skd/boxes"
)

// SampleFunc draws the positive and negative examples of one image from
// labels (1 positive, 0 negative, -1 ignored). Training uses a seeded
// BalancedSampler; parity tests feed torchvision's own choices.
type SampleFunc func(image int, labels []int) (pos, neg []int, err error)

// ImageTargets are one image's sampled anchors and the regression targets
// of its positives (4 per positive, RPN coder).
type ImageTargets struct {
	Pos, Neg []int
	Deltas   []float32
}

// AssignTargets matches anchors (all levels concatenated) with gt (4 per
// box) and samples them, as torchvision's RPN.assign_targets_to_anchors
// and fg_bg_sampler: IoU >= fg positive, < bg negative, in between
// ignored, low-quality matches allowed; an image without boxes has only
// negatives.
func AssignTargets(image int, anchors, gt []float32, cfg Config, sample SampleFunc) (*ImageTargets, error) {
	na := len(anchors) / 4
	ng := len(gt) / 4
	labels := make([]int, na)
	matched := make([]int, na)
	if ng > 0 {
		iou, err := boxes.IoU(gt, anchors)
		if err != nil {
			return nil, err
		}
		m := boxes.Matcher{High: cfg.FgIoUThresh, Low: cfg.BgIoUThresh, AllowLowQualityMatches: true}
		if matched, err = m.Match(iou, ng, na); err != nil {
			return nil, err
		}
		for i, mi := range matched {
			switch {
			case mi >= 0:
				labels[i] = 1
			case mi == boxes.BetweenThresholds:
				labels[i] = -1
			default:
				labels[i] = 0
			}
		}
	}
	pos, neg, err := sample(image, labels)
	if err != nil {
		return nil, fmt.Errorf("rpn: sampling image %d: %w", image, err)
	}
	t := &ImageTargets{Pos: pos, Neg: neg}
	if len(pos) > 0 {
		ref := make([]float32, 0, 4*len(pos))
		props := make([]float32, 0, 4*len(pos))
		for _, i := range pos {
			g := matched[i]
			ref = append(ref, gt[4*g:4*g+4]...)
			props = append(props, anchors[4*i:4*i+4]...)
		}
		if t.Deltas, err = RPNCoder.Encode(ref, props); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// LossTargets are the RPN losses' inputs in the flat index spaces of the
// per-level head outputs (levels' tensors concatenated in order).
type LossTargets struct {
	ObjIndex  []int32
	ObjTarget []float32
	ObjNorm   float32
	BoxBase   []int32
	BoxStride []int32
	BoxTarget [][4]float32
	BoxNorm   float32
}

// BuildLossTargets maps every image's sampled anchors to flat indices and
// sets the normalisers: torchvision averages the BCE over the sampled
// anchors and divides the box loss sum by their number; detectron2
// divides both sums by batch_size_per_image * N.
func BuildLossTargets(o *HeadOutputs, per []*ImageTargets, cfg Config) (*LossTargets, error) {
	if len(per) != o.N {
		return nil, fmt.Errorf("rpn: targets for %d images, batch of %d", len(per), o.N)
	}
	objOff := make([]int, len(o.Levels))
	delOff := make([]int, len(o.Levels))
	starts := make([]int, len(o.Levels)+1)
	for l, lv := range o.Levels {
		if l > 0 {
			objOff[l] = objOff[l-1] + len(o.Obj[l-1])
			delOff[l] = delOff[l-1] + len(o.Deltas[l-1])
		}
		starts[l+1] = starts[l] + lv.H*lv.W*o.A
	}
	locate := func(g int) (int, int) {
		for l := range o.Levels {
			if g < starts[l+1] {
				return l, g - starts[l]
			}
		}
		return -1, -1
	}
	t := &LossTargets{}
	sampled := 0
	for n, it := range per {
		add := func(g int, target float32) error {
			l, i := locate(g)
			if l < 0 {
				return fmt.Errorf("rpn: anchor %d out of range", g)
			}
			t.ObjIndex = append(t.ObjIndex, int32(objOff[l]+o.ObjIndex(l, n, i)))
			t.ObjTarget = append(t.ObjTarget, target)
			return nil
		}
		// torchvision concatenates positives then negatives per image
		// (torch.where over the union gives index order; the loss is a sum
		// so the order does not matter).
		for k, g := range it.Pos {
			if err := add(g, 1); err != nil {
				return nil, err
			}
			l, i := locate(g)
			base, stride := o.DeltaIndex(l, n, i)
			t.BoxBase = append(t.BoxBase, int32(delOff[l]+base))
			t.BoxStride = append(t.BoxStride, int32(stride))
			t.BoxTarget = append(t.BoxTarget, [4]float32{it.Deltas[4*k], it.Deltas[4*k+1], it.Deltas[4*k+2], it.Deltas[4*k+3]})
		}
		for _, g := range it.Neg {
			if err := add(g, 0); err != nil {
				return nil, err
			}
		}
		sampled += len(it.Pos) + len(it.Neg)
	}
	if cfg.LossNorm == "detectron2" {
		norm := float32(cfg.BatchSizePerImg * o.N)
		t.ObjNorm, t.BoxNorm = norm, norm
	} else {
		t.ObjNorm, t.BoxNorm = float32(sampled), float32(sampled)
	}
	if t.ObjNorm <= 0 {
		t.ObjNorm, t.BoxNorm = 1, 1
	}
	return t, nil
}
