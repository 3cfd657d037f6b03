package model

import (
	"github.com/skd-go/skd/backbone"
	"github.com/skd-go/skd/boxes"
	"github.com/skd-go/skd/fpn"
	"github.com/skd-go/skd/layers"
	"github.com/skd-go/skd/rpn"
)

// Description is the detector's inference path as an explicit list of its
// parts, in the order the graph builder applies them. The ONNX exporter
// (package export) reads it instead of reaching into the detector, and
// checks that every registered parameter is used by some part, so a part
// added to the detector without being added here fails the export by name.
type Description struct {
	Cfg Config
	// Reg holds every parameter (for the coverage check).
	Reg *layers.Registry
	// Body is the backbone's parts (C2..C5).
	Body backbone.Plan
	// FPN turns C2..C5 into P2..P6 (P6: max pool, kernel 1, stride 2, of P5).
	FPN *fpn.FPN
	// RPNHead runs on P2..P6; Anchors gives their anchors.
	RPNHead *rpn.Head
	Anchors *boxes.AnchorGenerator
	// Pooler pools the proposals from P2..P5.
	Pooler layers.RoIAlignConfig
	// BoxHead are the fully connected layers after pooling, each followed
	// by a ReLU (torchvision's TwoMLPHead fc6, fc7); Cls and BBox are the
	// predictor's class logits and class-specific box deltas.
	BoxHead   []*layers.Linear
	Cls, BBox *layers.Linear
}

// Describe returns the detector's parts (sharing its parameters).
func (d *FasterRCNN) Describe() *Description {
	return &Description{
		Cfg: d.Cfg, Reg: d.Reg, Body: d.Body.Plan(), FPN: d.FPN, RPNHead: d.RPNHead, Anchors: d.Anchors,
		Pooler:  d.Cfg.RoI.Pooler(d.Cfg.LevelMapperEpsInsideLog),
		BoxHead: []*layers.Linear{d.FC6, d.FC7}, Cls: d.Cls, BBox: d.BBox,
	}
}
