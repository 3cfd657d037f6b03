package rpn

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"

	"github.com/skd-go/skd/boxes"
	"github.com/skd-go/skd/layers"
)

// DefaultSampler is the seeded balanced sampler of training
// (batch_size_per_image, positive_fraction) drawing from rng.
func DefaultSampler(cfg Config, rng *rand.Rand) SampleFunc {
	return boxes.BalancedSampler{BatchSizePerImage: cfg.BatchSizePerImg, PositiveFraction: cfg.PositiveFraction}.Bind(rng)
}

// Stage is the RPN inside one compiled program (a mode and a padded batch
// shape): its levels' sizes and anchors, and in training the targets of
// its two losses.
type Stage struct {
	Cfg    Config
	Train  bool
	N, A   int
	Levels []Level
	// Anchors are per level (4 per anchor); all concatenates them.
	Anchors [][]float32
	all     []float32
	// NormReduce, when set, turns the losses' sample counts (sampled
	// anchors, positive anchors) into their data-parallel value in place
	// (model.FasterRCNN.NormReduce).
	NormReduce func(counts []float32) error

	bce *layers.BCETargets
	box *layers.BoxTargets
}

// NewStage lays out the anchors of an imageH x imageW batch of n over the
// FPN maps feats (NCHW nodes) with A anchors per location.
func NewStage(cfg Config, ag *boxes.AnchorGenerator, feats []*G.Node, n, a, imageH, imageW int, train bool) (*Stage, error) {
	s := &Stage{Cfg: cfg, Train: train, N: n, A: a}
	var sizes [][2]int
	for _, f := range feats {
		sh := f.Shape()
		s.Levels = append(s.Levels, Level{H: sh[2], W: sh[3]})
		sizes = append(sizes, [2]int{sh[2], sh[3]})
	}
	var err error
	if s.Anchors, err = ag.GenerateLevels(imageH, imageW, sizes); err != nil {
		return nil, err
	}
	for _, an := range s.Anchors {
		s.all = append(s.all, an...)
	}
	return s, nil
}

// Losses adds the training losses on the head's outputs: the objectness
// BCE and the box regression over the sampled anchors (targets from
// SetTargets).
func (s *Stage) Losses(b *layers.Builder, objs, deltas []*G.Node) map[string]*G.Node {
	s.bce, s.box = &layers.BCETargets{}, &layers.BoxTargets{}
	return map[string]*G.Node{
		"loss_objectness":  b.SigmoidBCE(s.bce, objs...),
		"loss_rpn_box_reg": b.BoxRegression(s.box, float64(s.Cfg.SmoothL1Beta), deltas...),
	}
}

// Proposals filters the head's outputs of a run (in: the objectness maps
// of every level, then the delta maps) into proposals per image.
func (s *Stage) Proposals(in [][]float32, imageSizes [][2]int) ([]Proposals, error) {
	nl := len(s.Levels)
	ho := &HeadOutputs{N: s.N, A: s.A, Levels: s.Levels, Obj: in[:nl], Deltas: in[nl:]}
	return FilterProposals(ho, s.Anchors, imageSizes, s.Train, s.Cfg)
}

// SetTargets matches and samples every image's anchors with its ground
// truth (gt: 4 per box) and fills the losses' targets.
func (s *Stage) SetTargets(gt [][]float32, sample SampleFunc) error {
	if s.bce == nil {
		return fmt.Errorf("rpn: targets for a stage without losses")
	}
	per := make([]*ImageTargets, s.N)
	for i := 0; i < s.N; i++ {
		t, err := AssignTargets(i, s.all, gt[i], s.Cfg, sample)
		if err != nil {
			return err
		}
		per[i] = t
	}
	ho := &HeadOutputs{N: s.N, A: s.A, Levels: s.Levels}
	for _, lv := range s.Levels {
		ho.Obj = append(ho.Obj, make([]float32, s.N*s.A*lv.H*lv.W))
		ho.Deltas = append(ho.Deltas, make([]float32, 4*s.N*s.A*lv.H*lv.W))
	}
	lt, err := BuildLossTargets(ho, per, s.Cfg)
	if err != nil {
		return err
	}
	if s.NormReduce != nil {
		n := []float32{lt.ObjNorm, lt.BoxNorm}
		if err := s.NormReduce(n); err != nil {
			return err
		}
		lt.ObjNorm, lt.BoxNorm = n[0], n[1]
	}
	s.bce.Index, s.bce.Target, s.bce.Norm = lt.ObjIndex, lt.ObjTarget, lt.ObjNorm
	s.box.Base, s.box.Stride, s.box.Target, s.box.Norm = lt.BoxBase, lt.BoxStride, lt.BoxTarget, lt.BoxNorm
	return nil
}

// NewAnchors makes the anchor generator of cfg for a pyramid of levels
// levels and returns it with its anchors per location (the head's A,
// which every level must share).
func NewAnchors(cfg Config, levels int) (*boxes.AnchorGenerator, int, error) {
	ag, err := boxes.NewAnchorGenerator(cfg.AnchorSizes, cfg.AspectRatios)
	if err != nil {
		return nil, 0, fmt.Errorf("rpn: %w", err)
	}
	if ag.NumLevels() != levels {
		return nil, 0, fmt.Errorf("rpn: anchor_sizes has %d levels; the FPN gives %d (P2-P6)", ag.NumLevels(), levels)
	}
	apl := ag.NumAnchorsPerLocation()
	for _, a := range apl {
		if a != apl[0] {
			return nil, 0, fmt.Errorf("rpn: every level needs the same number of anchors per location, got %v", apl)
		}
	}
	return ag, apl[0], nil
}
