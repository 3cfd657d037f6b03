package roihead

import (
	"math/rand"

	G "gorgonia.org/gorgonia"

	"github.com/skd-go/skd/layers"
)

// BoxHead is torchvision's TwoMLPHead (fc6, fc7 with ReLU) followed by its
// FastRCNNPredictor (cls_score, bbox_pred), on pooled RoI features.
type BoxHead struct {
	FC6, FC7  *layers.Linear
	Cls, BBox *layers.Linear
}

// NewBoxHead registers roi_heads.box_head.fc{6,7} and
// roi_heads.box_predictor.{cls_score,bbox_pred} (torchvision 0.14 names)
// for features of inChannels x PoolSize x PoolSize per RoI.
func NewBoxHead(reg *layers.Registry, inChannels int, cfg Config) *BoxHead {
	s, r, c := cfg.PoolSize, cfg.RepresentationSize, cfg.NumClasses
	return &BoxHead{
		FC6:  layers.NewLinear(reg, "roi_heads.box_head.fc6", inChannels*s*s, r),
		FC7:  layers.NewLinear(reg, "roi_heads.box_head.fc7", r, r),
		Cls:  layers.NewLinear(reg, "roi_heads.box_predictor.cls_score", r, c),
		BBox: layers.NewLinear(reg, "roi_heads.box_predictor.bbox_pred", r, 4*c),
	}
}

// Init draws fc6/fc7 as nn.Linear's defaults and the predictor per
// predictorInit: "torchvision" (nn.Linear defaults) or "detectron2"
// (cls_score N(0, 0.01), bbox_pred N(0, 0.001), zero biases).
func (h *BoxHead) Init(rng *rand.Rand, predictorInit string) {
	h.FC6.InitDefault(rng)
	h.FC7.InitDefault(rng)
	if predictorInit == "detectron2" {
		h.Cls.InitNormal(0.01, rng)
		h.BBox.InitNormal(0.001, rng)
	} else {
		h.Cls.InitDefault(rng)
		h.BBox.InitDefault(rng)
	}
}

// Forward maps pooled features [K, C, S, S] to class logits [K, NumClasses]
// and box deltas [K, 4 NumClasses].
func (h *BoxHead) Forward(b *layers.Builder, pooled *G.Node) (cls, box *G.Node) {
	f6 := b.Linear(pooled, h.FC6, true)
	f7 := b.Linear(f6, h.FC7, true)
	return b.Linear(f7, h.Cls, false), b.Linear(f7, h.BBox, false)
}
