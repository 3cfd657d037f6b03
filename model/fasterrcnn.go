package model

import (
	"fmt"
	"math"
	"math/rand"
	randv2 "math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/backbone"
	"github.com/skd-go/skd/boxes"
	"github.com/skd-go/skd/fpn"
	"github.com/skd-go/skd/layers"
	"github.com/skd-go/skd/roihead"
	"github.com/skd-go/skd/rpn"
)

// FasterRCNN is a Faster R-CNN with a ResNet-FPN backbone. Its parameters
// live in Reg under torchvision's state-dict names; one compiled program
// per (mode, padded batch shape) is cached and all share those weights.
type FasterRCNN struct {
	Cfg     Config
	Reg     *layers.Registry
	Body    *backbone.ResNet
	FPN     *fpn.FPN
	RPNHead *rpn.Head
	FC6     *layers.Linear
	FC7     *layers.Linear
	Cls     *layers.Linear
	BBox    *layers.Linear
	Anchors *boxes.AnchorGenerator

	// PCG drives the samplers; its state is part of a checkpoint.
	PCG *randv2.PCG
	rng *randv2.Rand
	// RPNSample and RoISample replace the seeded balanced samplers (parity
	// tests feed torchvision's choices).
	RPNSample rpn.SampleFunc
	RoISample roihead.SampleFunc
	// Extra adds loss terms to training programs (distillation).
	Extra ExtraLoss
	// NormReduce, when set, replaces the losses' sample counts (the RPN's
	// sampled anchors, the RoI head's sampled RoIs) in place by their
	// data-parallel value, the sum over ranks divided by the number of
	// ranks, so that averaging the ranks' gradients gives exactly the
	// one-process gradient of the whole global batch (see train/ddp.go).
	NormReduce func(counts []float32) error

	programs map[progKey]*Program
	order    []progKey
	// MaxPrograms bounds the program cache (least recently built first out).
	MaxPrograms int
}

// ExtraLoss builds extra scalar loss nodes on a training program, already
// weighted; they are added to the total and reported under their names.
type ExtraLoss func(b *layers.Builder, p *Program) (map[string]*G.Node, error)

type progKey struct {
	train   bool
	n, h, w int
}

// New registers a detector's parameters (zero-initialised; call Init or
// load weights).
func New(cfg Config) (*FasterRCNN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := layers.NewRegistry()
	bcfg := cfg.Backbone
	bcfg.Prefix = "backbone.body."
	body, err := backbone.NewResNet(reg, bcfg)
	if err != nil {
		return nil, err
	}
	f, err := fpn.New(reg, "backbone.fpn.", body.OutChannels[:], cfg.FPNChannels)
	if err != nil {
		return nil, err
	}
	ag, err := boxes.NewAnchorGenerator(cfg.RPN.AnchorSizes, cfg.RPN.AspectRatios)
	if err != nil {
		return nil, fmt.Errorf("rpn: %w", err)
	}
	if ag.NumLevels() != 5 {
		return nil, fmt.Errorf("rpn: anchor_sizes has %d levels; the FPN gives 5 (P2-P6)", ag.NumLevels())
	}
	apl := ag.NumAnchorsPerLocation()
	for _, a := range apl {
		if a != apl[0] {
			return nil, fmt.Errorf("rpn: every level needs the same number of anchors per location, got %v", apl)
		}
	}
	d := &FasterRCNN{Cfg: cfg, Reg: reg, Body: body, FPN: f, Anchors: ag, programs: map[progKey]*Program{}, MaxPrograms: 8}
	d.RPNHead = rpn.NewHead(reg, "rpn.head.", cfg.FPNChannels, apl[0])
	s := cfg.RoI.PoolSize
	d.FC6 = layers.NewLinear(reg, "roi_heads.box_head.fc6", cfg.FPNChannels*s*s, cfg.RoI.RepresentationSize)
	d.FC7 = layers.NewLinear(reg, "roi_heads.box_head.fc7", cfg.RoI.RepresentationSize, cfg.RoI.RepresentationSize)
	d.Cls = layers.NewLinear(reg, "roi_heads.box_predictor.cls_score", cfg.RoI.RepresentationSize, cfg.RoI.NumClasses)
	d.BBox = layers.NewLinear(reg, "roi_heads.box_predictor.bbox_pred", cfg.RoI.RepresentationSize, 4*cfg.RoI.NumClasses)
	d.Seed(0)
	return d, nil
}

// Seed resets the samplers' random stream.
func (d *FasterRCNN) Seed(seed uint64) {
	d.PCG = randv2.NewPCG(seed, 0x5eed)
	d.rng = randv2.New(d.PCG)
}

// Init draws every parameter as the reference frameworks do: ResNet
// kaiming-normal (fan-out), FPN kaiming-uniform(a=1), RPN head N(0, 0.01),
// fc6/fc7 nn.Linear defaults, predictor per Cfg.PredictorInit.
func (d *FasterRCNN) Init(seed int64) {
	rng := rand.New(rand.NewSource(seed))
	d.Body.Init(rng)
	d.FPN.Init(rng)
	d.RPNHead.Init(rng)
	d.FC6.InitDefault(rng)
	d.FC7.InitDefault(rng)
	if d.Cfg.PredictorInit == "detectron2" {
		d.Cls.InitNormal(0.01, rng)
		d.BBox.InitNormal(0.001, rng)
	} else {
		d.Cls.InitDefault(rng)
		d.BBox.InitDefault(rng)
	}
}

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
	return nil
}

// Program is one compiled graph for a mode and padded batch shape.
type Program struct {
	Train   bool
	N, H, W int
	B       *layers.Builder
	M       *layers.Machine
	X       *G.Node
	xval    *tensor.Dense
	// Feats are the FPN outputs P2..P6.
	Feats []*G.Node

	d        *FasterRCNN
	levels   []rpn.Level
	anchors  [][]float32
	allAnch  []float32
	perImage int
	kmax     int

	rpnBCE *layers.BCETargets
	rpnBox *layers.BoxTargets
	roiCE  *layers.CETargets
	roiBox *layers.BoxTargets

	Losses map[string]*G.Node
	Total  *G.Node
	Grads  []*G.Node
	Params []*layers.Param

	cls, box *layers.Kept

	// per run
	in        *Input
	proposals []rpn.Proposals
	roiBoxes  [][]float32 // per image, the RoIs fed to the heads
	err       error
}

// program returns the cached program for the mode and shape, building it
// on first use.
func (d *FasterRCNN) program(train bool, n, h, w int) (*Program, error) {
	k := progKey{train, n, h, w}
	if p, ok := d.programs[k]; ok {
		return p, nil
	}
	p, err := d.build(train, n, h, w)
	if err != nil {
		return nil, err
	}
	if d.MaxPrograms > 0 && len(d.order) >= d.MaxPrograms {
		old := d.order[0]
		d.order = d.order[1:]
		if op := d.programs[old]; op != nil {
			op.M.Close()
		}
		delete(d.programs, old)
	}
	d.programs[k] = p
	d.order = append(d.order, k)
	return p, nil
}

// Programs returns how many compiled programs are cached.
func (d *FasterRCNN) Programs() int { return len(d.programs) }

func (d *FasterRCNN) build(train bool, n, h, w int) (*Program, error) {
	cfg := d.Cfg
	p := &Program{Train: train, N: n, H: h, W: w, d: d, Losses: map[string]*G.Node{}}
	b := layers.NewBuilder(d.Reg)
	b.Training = train
	p.B = b
	p.X = b.Input("images", n, 3, h, w)
	p.xval = tensor.New(tensor.WithShape(n, 3, h, w), tensor.Of(tensor.Float32))
	if err := G.Let(p.X, p.xval); err != nil {
		return nil, err
	}
	c := d.Body.Forward(b, p.X)
	p.Feats = d.FPN.Forward(b, c[:])
	if err := b.Err(); err != nil {
		return nil, err
	}
	objs, deltas := d.RPNHead.Forward(b, p.Feats)
	var sizes [][2]int
	for _, f := range p.Feats {
		s := f.Shape()
		p.levels = append(p.levels, rpn.Level{H: s[2], W: s[3]})
		sizes = append(sizes, [2]int{s[2], s[3]})
	}
	var err error
	if p.anchors, err = d.Anchors.GenerateLevels(h, w, sizes); err != nil {
		return nil, err
	}
	for _, a := range p.anchors {
		p.allAnch = append(p.allAnch, a...)
	}
	if train {
		p.perImage = cfg.RoI.BatchSizePerImg
	} else {
		p.perImage = cfg.RPN.PostNMSTopNTest
	}
	p.kmax = n * p.perImage
	if train {
		p.roiCE = &layers.CETargets{}
		p.roiBox = &layers.BoxTargets{CommonStride: 1}
	}
	rois := b.Host("proposals", []int{p.kmax, 5}, p.proposalsFn, append(append([]*G.Node{}, objs...), deltas...)...)
	pcfg := layers.RoIAlignConfig{OutputSize: cfg.RoI.PoolSize, SamplingRatio: cfg.RoI.SamplingRatio, Aligned: cfg.RoI.Aligned,
		CanonicalScale: cfg.RoI.CanonicalScale, CanonicalLevel: 4, Eps: cfg.RoI.LevelMapperEps, EpsInsideLog: cfg.LevelMapperEpsInsideLog}
	pooled := b.MultiScaleRoIAlign(rois, p.Feats[:4], h, w, pcfg)
	f6 := b.Linear(pooled, d.FC6, true)
	f7 := b.Linear(f6, d.FC7, true)
	cls := b.Linear(f7, d.Cls, false)
	box := b.Linear(f7, d.BBox, false)
	if err := b.Err(); err != nil {
		return nil, err
	}
	if !train {
		p.cls, p.box = b.Keep(cls), b.Keep(box)
	} else {
		p.rpnBCE = &layers.BCETargets{}
		p.rpnBox = &layers.BoxTargets{}
		p.Losses["loss_objectness"] = b.SigmoidBCE(p.rpnBCE, objs...)
		p.Losses["loss_rpn_box_reg"] = b.BoxRegression(p.rpnBox, float64(cfg.RPN.SmoothL1Beta), deltas...)
		p.Losses["loss_classifier"] = b.SoftmaxCE(p.roiCE, cls)
		p.Losses["loss_box_reg"] = b.BoxRegression(p.roiBox, float64(cfg.RoI.SmoothL1Beta), box)
		if d.Extra != nil {
			extra, err := d.Extra(b, p)
			if err != nil {
				return nil, err
			}
			for k, v := range extra {
				p.Losses[k] = v
			}
		}
		var terms []*G.Node
		for _, k := range sortedKeys(p.Losses) {
			terms = append(terms, p.Losses[k])
		}
		p.Total = b.AddScalars(terms...)
		if err := b.Err(); err != nil {
			return nil, err
		}
		nodes, params := b.TrainableNodes()
		if len(nodes) == 0 {
			return nil, fmt.Errorf("model: nothing to train (every parameter is frozen)")
		}
		if p.Grads, err = G.Grad(p.Total, nodes...); err != nil {
			return nil, fmt.Errorf("model: differentiating: %w", err)
		}
		p.Params = params
	}
	if err := b.Err(); err != nil {
		return nil, err
	}
	if p.M, err = layers.NewMachine(b.G); err != nil {
		return nil, err
	}
	return p, nil
}

// proposalsFn runs inside the graph between the RPN head and the RoI
// heads: it filters proposals and, in training, samples RoIs and fills
// the RoI losses' targets. Rows of image i sit at [i*perImage, ...);
// unused rows have batch index -1.
func (p *Program) proposalsFn(in [][]float32, out []float32) error {
	d := p.d
	nl := len(p.levels)
	ho := &rpn.HeadOutputs{N: p.N, A: d.RPNHead.A, Levels: p.levels, Obj: in[:nl], Deltas: in[nl:]}
	props, err := rpn.FilterProposals(ho, p.anchors, p.in.Sizes, p.Train, d.Cfg.RPN)
	if err != nil {
		return err
	}
	p.proposals = props
	p.roiBoxes = make([][]float32, p.N)
	for r := 0; r < p.kmax; r++ {
		out[5*r] = -1
	}
	if !p.Train {
		for i, pr := range props {
			k := len(pr.Boxes) / 4
			if k > p.perImage {
				k = p.perImage
			}
			p.roiBoxes[i] = pr.Boxes[:4*k]
			for j := 0; j < k; j++ {
				r := i*p.perImage + j
				out[5*r] = float32(i)
				copy(out[5*r+1:5*r+5], pr.Boxes[4*j:4*j+4])
			}
		}
		return nil
	}
	c := d.Cfg.RoI.NumClasses
	ce, bx := p.roiCE, p.roiBox
	if cap(ce.Label) < p.kmax {
		ce.Label = make([]int32, p.kmax)
	}
	ce.Label = ce.Label[:p.kmax]
	for i := range ce.Label {
		ce.Label[i] = -1
	}
	bx.Base, bx.Target, bx.Stride = bx.Base[:0], bx.Target[:0], nil
	sample := d.RoISample
	if sample == nil {
		s := boxes.BalancedSampler{BatchSizePerImage: d.Cfg.RoI.BatchSizePerImg, PositiveFraction: d.Cfg.RoI.PositiveFraction}
		sample = func(_ int, labels []int) ([]int, []int, error) { return s.Sample(labels, d.rng) }
	}
	total := 0
	for i, pr := range props {
		s, err := roihead.SampleProposals(i, pr.Boxes, p.in.GT[i], p.in.GTLabels[i], d.Cfg.RoI, sample)
		if err != nil {
			return err
		}
		k := len(s.Labels)
		if k > p.perImage {
			return fmt.Errorf("roi_heads: %d RoIs sampled for image %d, room for %d", k, i, p.perImage)
		}
		p.roiBoxes[i] = s.Boxes
		for j := 0; j < k; j++ {
			r := i*p.perImage + j
			out[5*r] = float32(i)
			copy(out[5*r+1:5*r+5], s.Boxes[4*j:4*j+4])
			lab := s.Labels[j]
			ce.Label[r] = int32(lab)
			if lab > 0 {
				if lab >= c {
					return fmt.Errorf("roi_heads: label %d out of range for %d classes", lab, c)
				}
				bx.Base = append(bx.Base, int32(r*4*c+4*lab))
				bx.Target = append(bx.Target, [4]float32{s.Targets[4*j], s.Targets[4*j+1], s.Targets[4*j+2], s.Targets[4*j+3]})
			}
		}
		total += k
	}
	norm := float32(total)
	if d.NormReduce != nil {
		n := []float32{norm}
		if err := d.NormReduce(n); err != nil {
			return err
		}
		norm = n[0]
	}
	if norm <= 0 {
		norm = 1
	}
	ce.Norm, bx.Norm = norm, norm
	return nil
}

// setInput copies the batch into the program and computes the RPN targets.
func (p *Program) setInput(in *Input) error {
	if err := in.Validate(p.Train); err != nil {
		return err
	}
	copy(p.xval.Data().([]float32), in.Images)
	p.in = in
	if !p.Train {
		return nil
	}
	d := p.d
	sample := d.RPNSample
	if sample == nil {
		s := boxes.BalancedSampler{BatchSizePerImage: d.Cfg.RPN.BatchSizePerImg, PositiveFraction: d.Cfg.RPN.PositiveFraction}
		sample = func(_ int, labels []int) ([]int, []int, error) { return s.Sample(labels, d.rng) }
	}
	per := make([]*rpn.ImageTargets, p.N)
	for i := 0; i < p.N; i++ {
		if len(in.GT[i])/4 != len(in.GTLabels[i]) {
			return fmt.Errorf("model: image %d has %d boxes and %d labels", i, len(in.GT[i])/4, len(in.GTLabels[i]))
		}
		t, err := rpn.AssignTargets(i, p.allAnch, in.GT[i], d.Cfg.RPN, sample)
		if err != nil {
			return err
		}
		per[i] = t
	}
	ho := &rpn.HeadOutputs{N: p.N, A: d.RPNHead.A, Levels: p.levels}
	for _, lv := range p.levels {
		ho.Obj = append(ho.Obj, make([]float32, 0, p.N*ho.A*lv.H*lv.W)[:p.N*ho.A*lv.H*lv.W])
		ho.Deltas = append(ho.Deltas, make([]float32, 0, 4*p.N*ho.A*lv.H*lv.W)[:4*p.N*ho.A*lv.H*lv.W])
	}
	lt, err := rpn.BuildLossTargets(ho, per, d.Cfg.RPN)
	if err != nil {
		return err
	}
	if d.NormReduce != nil {
		n := []float32{lt.ObjNorm, lt.BoxNorm}
		if err := d.NormReduce(n); err != nil {
			return err
		}
		lt.ObjNorm, lt.BoxNorm = n[0], n[1]
	}
	p.rpnBCE.Index, p.rpnBCE.Target, p.rpnBCE.Norm = lt.ObjIndex, lt.ObjTarget, lt.ObjNorm
	p.rpnBox.Base, p.rpnBox.Stride, p.rpnBox.Target, p.rpnBox.Norm = lt.BoxBase, lt.BoxStride, lt.BoxTarget, lt.BoxNorm
	return nil
}

// Losses are a training step's named loss values and their total.
type Losses map[string]float64

// TrainStep runs forward and backward on a batch; the gradients are then
// in Gradients(). It returns the named losses (their sum under "total").
func (d *FasterRCNN) TrainStep(in *Input) (Losses, *Program, error) {
	p, err := d.program(true, in.N, in.H, in.W)
	if err != nil {
		return nil, nil, err
	}
	if err := p.setInput(in); err != nil {
		return nil, nil, err
	}
	if err := p.M.Run(); err != nil {
		return nil, nil, fmt.Errorf("model: training step: %w", err)
	}
	out := Losses{}
	for k, n := range p.Losses {
		v, _ := layers.LossValue(n)
		out[k] = v
	}
	tot, _ := layers.LossValue(p.Total)
	out["total"] = tot
	return out, p, nil
}

// Gradient returns the gradient of parameter i of the last run
// (p.Params[i]); valid until the next run.
func (p *Program) Gradient(i int) []float32 {
	return p.Grads[i].Value().Data().([]float32)
}

// Proposals returns the last run's proposals per image.
func (p *Program) Proposals() []rpn.Proposals { return p.proposals }

// Detect runs inference and returns detections per image in the resized
// image coordinates of in (map them back with the batch's scales).
func (d *FasterRCNN) Detect(in *Input) ([]*roihead.Detections, *Program, error) {
	p, err := d.program(false, in.N, in.H, in.W)
	if err != nil {
		return nil, nil, err
	}
	if err := p.setInput(in); err != nil {
		return nil, nil, err
	}
	if err := p.M.Run(); err != nil {
		return nil, nil, fmt.Errorf("model: inference: %w", err)
	}
	c := d.Cfg.RoI.NumClasses
	cls, box := p.cls.Data(), p.box.Data()
	out := make([]*roihead.Detections, in.N)
	for i := 0; i < in.N; i++ {
		k := len(p.roiBoxes[i]) / 4
		r0 := i * p.perImage
		det, err := roihead.Postprocess(cls[r0*c:(r0+k)*c], box[r0*4*c:(r0+k)*4*c], p.roiBoxes[i], in.Sizes[i][0], in.Sizes[i][1], d.Cfg.RoI)
		if err != nil {
			return nil, nil, err
		}
		out[i] = det
	}
	return out, p, nil
}

// CheckFinite reports the first loss that is NaN or infinite.
func (l Losses) CheckFinite() error {
	for _, k := range sortedKeys(l) {
		if v := l[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s is %v", k, v)
		}
	}
	return nil
}
