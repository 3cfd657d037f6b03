package roihead

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

// Stage is the RoI heads inside one compiled program (a mode and a batch
// size): it pools the RoIs, runs the box head, and owns what lies around
// them: in training the proposal-to-target assignment and the two losses,
// in inference the kept outputs and their post-processing. Each image
// has PerImage rows of RoIs; rows of image i start at i*PerImage and
// unused rows have batch index -1.
type Stage struct {
	Cfg      Config
	Train    bool
	N        int
	PerImage int
	// EpsInsideLog selects detectron2's RoI level formula.
	EpsInsideLog bool
	// NormReduce, when set, turns the losses' sample count (sampled RoIs)
	// into its data-parallel value in place
	// (model.FasterRCNN.NormReduce).
	NormReduce func(counts []float32) error

	ce       *layers.CETargets
	box      *layers.BoxTargets
	cls, bbx *layers.Kept
	// boxes are per image the RoIs the last run fed to the head.
	boxes [][]float32
}

// NewStage sizes the stage for a batch of n: in training
// batch_size_per_image RoIs per image, in inference the RPN's
// post_nms_top_n_test (postNMSTest).
func NewStage(cfg Config, n int, train bool, postNMSTest int, epsInsideLog bool) *Stage {
	s := &Stage{Cfg: cfg, Train: train, N: n, PerImage: postNMSTest, EpsInsideLog: epsInsideLog}
	if train {
		s.PerImage = cfg.BatchSizePerImg
		s.ce = &layers.CETargets{}
		s.box = &layers.BoxTargets{CommonStride: 1}
	}
	return s
}

// Rows is the number of RoI rows of the batch (N * PerImage).
func (s *Stage) Rows() int { return s.N * s.PerImage }

// Pooler is the box RoIAlign's configuration: P2-P5, canonical level 4
// (epsInsideLog: detectron2's level formula).
func (c Config) Pooler(epsInsideLog bool) layers.RoIAlignConfig {
	return layers.RoIAlignConfig{OutputSize: c.PoolSize, SamplingRatio: c.SamplingRatio, Aligned: c.Aligned,
		CanonicalScale: c.CanonicalScale, CanonicalLevel: 4, Eps: c.LevelMapperEps, EpsInsideLog: epsInsideLog}
}

// Forward pools the RoIs ([Rows, 5]: batch index, x1, y1, x2, y2) from
// the FPN levels P2-P5 of an imageH x imageW input and applies the box
// head; an inference stage keeps the outputs for Detections.
func (s *Stage) Forward(b *layers.Builder, h *BoxHead, rois *G.Node, feats []*G.Node, imageH, imageW int) (cls, box *G.Node) {
	pooled := b.MultiScaleRoIAlign(rois, feats[:4], imageH, imageW, s.Cfg.Pooler(s.EpsInsideLog))
	cls, box = h.Forward(b, pooled)
	if !s.Train && b.Err() == nil {
		s.cls, s.bbx = b.Keep(cls), b.Keep(box)
	}
	return cls, box
}

// Losses adds the training losses on the head's outputs: softmax
// cross-entropy over the sampled RoIs and the class-specific box
// regression of the positives, both divided by the number sampled.
func (s *Stage) Losses(b *layers.Builder, cls, box *G.Node) map[string]*G.Node {
	return map[string]*G.Node{
		"loss_classifier": b.SoftmaxCE(s.ce, cls),
		"loss_box_reg":    b.BoxRegression(s.box, float64(s.Cfg.SmoothL1Beta), box),
	}
}

// Select writes the RoI rows (out: Rows x 5) from each image's proposals
// (4 per box). In inference these are the first PerImage proposals; in
// training the proposals are matched with the ground truth (gt, 4 per
// box, and gtLabels per image) and sampled (SampleProposals), and the
// losses' targets are filled.
func (s *Stage) Select(proposals, gt [][]float32, gtLabels [][]int, sample SampleFunc, out []float32) error {
	s.boxes = make([][]float32, s.N)
	for r := 0; r < s.Rows(); r++ {
		out[5*r] = -1
	}
	if !s.Train {
		for i, pr := range proposals {
			k := min(len(pr)/4, s.PerImage)
			s.boxes[i] = pr[:4*k]
			s.writeRows(i, s.boxes[i], out)
		}
		return nil
	}
	s.resetTargets()
	total := 0
	for i, pr := range proposals {
		sm, err := SampleProposals(i, pr, gt[i], gtLabels[i], s.Cfg, sample)
		if err != nil {
			return err
		}
		if err := s.addTargets(i, sm, out); err != nil {
			return err
		}
		total += len(sm.Labels)
	}
	norm := float32(total)
	if s.NormReduce != nil {
		n := []float32{norm}
		if err := s.NormReduce(n); err != nil {
			return err
		}
		norm = n[0]
	}
	if norm <= 0 {
		norm = 1
	}
	s.ce.Norm, s.box.Norm = norm, norm
	return nil
}

func (s *Stage) writeRows(i int, bx []float32, out []float32) {
	for j := 0; j < len(bx)/4; j++ {
		r := i*s.PerImage + j
		out[5*r] = float32(i)
		copy(out[5*r+1:5*r+5], bx[4*j:4*j+4])
	}
}

func (s *Stage) resetTargets() {
	ce, bx := s.ce, s.box
	if cap(ce.Label) < s.Rows() {
		ce.Label = make([]int32, s.Rows())
	}
	ce.Label = ce.Label[:s.Rows()]
	for i := range ce.Label {
		ce.Label[i] = -1
	}
	bx.Base, bx.Target, bx.Stride = bx.Base[:0], bx.Target[:0], nil
}

// addTargets writes image i's sampled RoIs and their class and box
// targets (the box target sits at the deltas of the RoI's class).
func (s *Stage) addTargets(i int, sm *Sampled, out []float32) error {
	k, c := len(sm.Labels), s.Cfg.NumClasses
	if k > s.PerImage {
		return fmt.Errorf("roi_heads: %d RoIs sampled for image %d, room for %d", k, i, s.PerImage)
	}
	s.boxes[i] = sm.Boxes
	s.writeRows(i, sm.Boxes, out)
	for j, lab := range sm.Labels {
		r := i*s.PerImage + j
		s.ce.Label[r] = int32(lab)
		if lab > 0 {
			if lab >= c {
				return fmt.Errorf("roi_heads: label %d out of range for %d classes", lab, c)
			}
			t := sm.Targets[4*j : 4*j+4]
			s.box.Base = append(s.box.Base, int32(r*4*c+4*lab))
			s.box.Target = append(s.box.Target, [4]float32{t[0], t[1], t[2], t[3]})
		}
	}
	return nil
}

// RoIs returns image i's RoIs of the last run (4 per box).
func (s *Stage) RoIs(i int) []float32 { return s.boxes[i] }

// Detections post-processes the last inference run: per image, its
// RoIs' logits and deltas become detections in the coordinates of its
// resized size (sizes: h, w per image).
func (s *Stage) Detections(sizes [][2]int) ([]*Detections, error) {
	if s.Train || s.cls == nil {
		return nil, fmt.Errorf("roi_heads: detections of a training stage")
	}
	c := s.Cfg.NumClasses
	cls, box := s.cls.Data(), s.bbx.Data()
	out := make([]*Detections, s.N)
	for i := 0; i < s.N; i++ {
		k := len(s.boxes[i]) / 4
		r0 := i * s.PerImage
		det, err := Postprocess(cls[r0*c:(r0+k)*c], box[r0*4*c:(r0+k)*4*c], s.boxes[i], sizes[i][0], sizes[i][1], s.Cfg)
		if err != nil {
			return nil, err
		}
		out[i] = det
	}
	return out, nil
}
