// Package rpn is Faster R-CNN's region proposal network: the shared head
// (graph side), and the host-side logic around it: proposal filtering
// (decode, clip, per-level top-k and NMS, per-image top-k) and the anchor
// targets of its losses (matching, balanced sampling, regression targets),
// all as torchvision 0.14 does them. Stage holds one compiled program's
// part of it: anchors, targets and the two losses.
package rpn

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"

	"github.com/skd-go/skd/layers"
)

// Config holds the RPN's settings (torchvision defaults in Defaults).
type Config struct {
	AnchorSizes      [][]float32 `yaml:"anchor_sizes"`
	AspectRatios     [][]float32 `yaml:"aspect_ratios"`
	PreNMSTopNTrain  int         `yaml:"pre_nms_top_n_train"`
	PreNMSTopNTest   int         `yaml:"pre_nms_top_n_test"`
	PostNMSTopNTrain int         `yaml:"post_nms_top_n_train"`
	PostNMSTopNTest  int         `yaml:"post_nms_top_n_test"`
	NMSThresh        float64     `yaml:"nms_thresh"`
	FgIoUThresh      float32     `yaml:"fg_iou_thresh"`
	BgIoUThresh      float32     `yaml:"bg_iou_thresh"`
	BatchSizePerImg  int         `yaml:"batch_size_per_image"`
	PositiveFraction float64     `yaml:"positive_fraction"`
	MinSize          float32     `yaml:"min_size"`
	ScoreThresh      float32     `yaml:"score_thresh"`
	// SmoothL1Beta is the box loss's beta; 0 gives L1 (detectron2).
	SmoothL1Beta float32 `yaml:"smooth_l1_beta"`
	// LossNorm is "torchvision" (BCE mean over sampled anchors, box loss
	// summed / number sampled) or "detectron2" (both summed / (256 N)).
	LossNorm string `yaml:"loss_norm"`
}

// Defaults returns torchvision's fasterrcnn_resnet50_fpn RPN settings.
func Defaults() Config {
	return Config{
		AnchorSizes:      [][]float32{{32}, {64}, {128}, {256}, {512}},
		AspectRatios:     [][]float32{{0.5, 1, 2}},
		PreNMSTopNTrain:  2000,
		PreNMSTopNTest:   1000,
		PostNMSTopNTrain: 2000,
		PostNMSTopNTest:  1000,
		NMSThresh:        0.7,
		FgIoUThresh:      0.7,
		BgIoUThresh:      0.3,
		BatchSizePerImg:  256,
		PositiveFraction: 0.5,
		MinSize:          1e-3,
		ScoreThresh:      0,
		SmoothL1Beta:     1.0 / 9,
		LossNorm:         "torchvision",
	}
}

// Validate checks the settings.
func (c Config) Validate() error {
	switch {
	case len(c.AnchorSizes) == 0:
		return fmt.Errorf("rpn: anchor_sizes is empty")
	case c.PreNMSTopNTrain <= 0 || c.PreNMSTopNTest <= 0 || c.PostNMSTopNTrain <= 0 || c.PostNMSTopNTest <= 0:
		return fmt.Errorf("rpn: pre/post NMS top-n must be > 0")
	case c.NMSThresh <= 0 || c.NMSThresh > 1:
		return fmt.Errorf("rpn: nms_thresh %v not in (0, 1]", c.NMSThresh)
	case c.BgIoUThresh > c.FgIoUThresh:
		return fmt.Errorf("rpn: bg_iou_thresh %v > fg_iou_thresh %v", c.BgIoUThresh, c.FgIoUThresh)
	case c.BatchSizePerImg <= 0 || c.PositiveFraction <= 0 || c.PositiveFraction > 1:
		return fmt.Errorf("rpn: bad sampler settings (batch_size_per_image %d, positive_fraction %v)", c.BatchSizePerImg, c.PositiveFraction)
	case c.SmoothL1Beta < 0:
		return fmt.Errorf("rpn: smooth_l1_beta must be >= 0")
	case c.LossNorm != "torchvision" && c.LossNorm != "detectron2":
		return fmt.Errorf("rpn: loss_norm %q (want torchvision or detectron2)", c.LossNorm)
	}
	return nil
}

// Head is torchvision's RPNHead: a shared 3x3 conv + ReLU, then 1x1
// objectness (A channels) and 1x1 box deltas (4A channels) per level.
type Head struct {
	Conv, Cls, BBox *layers.Conv2d
	A               int
}

// NewHead registers rpn.head.* (torchvision 0.14 names:
// rpn.head.conv.0.0.weight, rpn.head.cls_logits.weight,
// rpn.head.bbox_pred.weight).
func NewHead(reg *layers.Registry, prefix string, channels, anchorsPerLocation int) *Head {
	return &Head{
		Conv: layers.NewConv2d(reg, prefix+"conv.0.0", channels, channels, 3, 1, 1, 1, true),
		Cls:  layers.NewConv2d(reg, prefix+"cls_logits", channels, anchorsPerLocation, 1, 1, 0, 1, true),
		BBox: layers.NewConv2d(reg, prefix+"bbox_pred", channels, 4*anchorsPerLocation, 1, 1, 0, 1, true),
		A:    anchorsPerLocation,
	}
}

// Init draws the weights from N(0, 0.01) with zero biases, as torchvision.
func (h *Head) Init(rng *rand.Rand) {
	for _, c := range []*layers.Conv2d{h.Conv, h.Cls, h.BBox} {
		layers.Normal(c.Weight, 0.01, rng)
		layers.Constant(c.Bias, 0)
	}
}

// Forward applies the head to every level and returns the objectness
// logits [N, A, H, W] and deltas [N, 4A, H, W] per level.
func (h *Head) Forward(b *layers.Builder, feats []*G.Node) (objs, deltas []*G.Node) {
	for _, f := range feats {
		t := b.Conv(f, h.Conv, nil, nil, true)
		objs = append(objs, b.Conv(t, h.Cls, nil, nil, false))
		deltas = append(deltas, b.Conv(t, h.BBox, nil, nil, false))
	}
	return objs, deltas
}
