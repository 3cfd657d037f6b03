package model

import (
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"

	G "gorgonia.org/gorgonia"

	"github.com/skd-go/skd/backbone"
	"github.com/skd-go/skd/boxes"
	"github.com/skd-go/skd/fpn"
	"github.com/skd-go/skd/layers"
	"github.com/skd-go/skd/roihead"
	"github.com/skd-go/skd/rpn"
)

// FasterRCNN is a Faster R-CNN with a ResNet-FPN backbone, assembled as
// torchvision's GeneralizedRCNN: backbone (Body + FPN), RPN, RoI heads.
// Each stage owns its head, targets and losses (packages rpn, roihead);
// this package wires them into one graph. Parameters live in Reg under
// torchvision's state-dict names; one compiled program per (mode, padded
// batch shape) is cached (program.go) and all share those weights.
type FasterRCNN struct {
	Cfg     Config
	Reg     *layers.Registry
	Body    *backbone.ResNet
	FPN     *fpn.FPN
	RPNHead *rpn.Head
	Anchors *boxes.AnchorGenerator
	// BoxHead (roi_heads.box_head + box_predictor: FC6, FC7, Cls, BBox).
	*roihead.BoxHead

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
	// The stages apply it (rpn.Stage, roihead.Stage NormReduce).
	NormReduce func(counts []float32) error
	// GradWatch, when set before the first training step (data-parallel
	// training), is asked once per training program for groups of its
	// parameters (indices into Program.Params) and a function that the
	// program calls during each training step as soon as a group's
	// gradients (Program.Gradient) are final: in group order, on the
	// step's goroutine, while the rest of the backward pass waits
	// (layers.Machine.WatchGroups). The gradient allreduce of a bucket
	// starts there, overlapped with the rest of the backward pass.
	GradWatch func(p *Program) (groups [][]int, ready func(k int))

	programs map[progKey]*Program
	clock    uint64
	// MaxPrograms bounds the program cache (least recently used first out).
	MaxPrograms int
	// Arena is the memory every program computes in (nil: each op keeps
	// its own output tensors, the unplanned path kept for comparison).
	Arena *layers.Arena
	// inputs backs the programs' image tensors (one run at a time).
	inputs []float32
}

// ExtraLoss builds extra scalar loss nodes on a training program, already
// weighted; they are added to the total and reported under their names.
type ExtraLoss func(b *layers.Builder, p *Program) (map[string]*G.Node, error)

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
	ag, apl, err := rpn.NewAnchors(cfg.RPN, 5)
	if err != nil {
		return nil, err
	}
	d := &FasterRCNN{Cfg: cfg, Reg: reg, Body: body, FPN: f, Anchors: ag, programs: map[progKey]*Program{}, MaxPrograms: 8, Arena: layers.NewArena()}
	d.RPNHead = rpn.NewHead(reg, "rpn.head.", cfg.FPNChannels, apl)
	d.BoxHead = roihead.NewBoxHead(reg, cfg.FPNChannels, cfg.RoI)
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
	d.BoxHead.Init(rng, d.Cfg.PredictorInit)
}

// forward adds backbone, FPN, RPN head, the proposals step and the RoI
// heads to p's graph, and in training the four detection losses.
func (d *FasterRCNN) forward(p *Program, b *layers.Builder) error {
	cfg, n, h, w := d.Cfg, p.N, p.H, p.W
	p.Images = b.Input("images", n, 3, h, w)
	if err := p.bindImages(); err != nil {
		return err
	}
	c := d.Body.Forward(b, p.Images)
	p.Feats = d.FPN.Forward(b, c[:])
	if err := b.Err(); err != nil {
		return err
	}
	objs, deltas := d.RPNHead.Forward(b, p.Feats)
	var err error
	if p.rpn, err = rpn.NewStage(cfg.RPN, d.Anchors, p.Feats, n, d.RPNHead.A, h, w, p.Train); err != nil {
		return err
	}
	p.roi = roihead.NewStage(cfg.RoI, n, p.Train, cfg.RPN.PostNMSTopNTest, cfg.LevelMapperEpsInsideLog)
	rois := b.Host("proposals", []int{p.roi.Rows(), 5}, p.proposalsFn, append(append([]*G.Node{}, objs...), deltas...)...)
	cls, box := p.roi.Forward(b, d.BoxHead, rois, p.Feats, h, w)
	if err := b.Err(); err != nil {
		return err
	}
	if p.Train {
		for _, l := range []map[string]*G.Node{p.rpn.Losses(b, objs, deltas), p.roi.Losses(b, cls, box)} {
			for k, v := range l {
				p.Losses[k] = v
			}
		}
	}
	return nil
}

// backward adds the extra losses, the total and its gradients with
// respect to every trainable parameter.
func (d *FasterRCNN) backward(p *Program, b *layers.Builder) error {
	if d.Extra != nil {
		extra, err := d.Extra(b, p)
		if err != nil {
			return err
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
		return err
	}
	nodes, params := b.TrainableNodes()
	if len(nodes) == 0 {
		return fmt.Errorf("model: nothing to train (every parameter is frozen)")
	}
	var err error
	if p.Grads, err = G.Grad(p.Total, nodes...); err != nil {
		return fmt.Errorf("model: differentiating: %w", err)
	}
	p.Params = params
	return nil
}

// proposalsFn runs inside the graph between the RPN head and the RoI
// heads: the RPN filters proposals, the RoI heads select their RoIs (in
// training: sample them and fill their losses' targets).
func (p *Program) proposalsFn(in [][]float32, out []float32) error {
	props, err := p.rpn.Proposals(in, p.in.Sizes)
	if err != nil {
		return err
	}
	p.proposals = props
	boxes := make([][]float32, len(props))
	for i, pr := range props {
		boxes[i] = pr.Boxes
	}
	sample := p.d.RoISample
	if sample == nil {
		sample = roihead.DefaultSampler(p.d.Cfg.RoI, p.d.rng)
	}
	p.roi.NormReduce = p.d.NormReduce
	return p.roi.Select(boxes, p.in.GT, p.in.GTLabels, sample, out)
}

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
	if d.GradWatch != nil && !p.watched {
		if err := p.watchGrads(d.GradWatch); err != nil {
			return nil, nil, err
		}
	}
	if err := p.Machine.Run(); err != nil {
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
	if err := p.Machine.Run(); err != nil {
		return nil, nil, fmt.Errorf("model: inference: %w", err)
	}
	out, err := p.roi.Detections(in.Sizes)
	if err != nil {
		return nil, nil, err
	}
	return out, p, nil
}
