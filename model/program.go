package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/layers"
	"github.com/skd-go/skd/roihead"
	"github.com/skd-go/skd/rpn"
)

// Program is one compiled graph for a mode and padded batch shape.
type Program struct {
	Train   bool
	N, H, W int
	Builder *layers.Builder
	Machine *layers.Machine
	// Images is the input node (N x 3 x H x W).
	Images *G.Node
	xval   *tensor.Dense
	// Feats are the FPN outputs P2..P6.
	Feats []*G.Node

	d   *FasterRCNN
	rpn *rpn.Stage
	roi *roihead.Stage

	Losses map[string]*G.Node
	Total  *G.Node
	Grads  []*G.Node
	Params []*layers.Param

	lastUse uint64
	watched bool // GradWatch installed

	// per run
	in        *Input
	proposals []rpn.Proposals
}

type progKey struct {
	train   bool
	n, h, w int
}

// program returns the cached program for the mode and shape, building it
// on first use; past MaxPrograms the least recently used one is closed
// (its plan leaves the arena, which keeps the size of the largest). This,
// build and bindImages are the program cache and compile step.
func (d *FasterRCNN) program(train bool, n, h, w int) (*Program, error) {
	k := progKey{train, n, h, w}
	d.clock++
	if p, ok := d.programs[k]; ok {
		p.lastUse = d.clock
		return p, nil
	}
	if d.MaxPrograms > 0 {
		for len(d.programs) >= d.MaxPrograms {
			d.evictLRU()
		}
	}
	p, err := d.build(train, n, h, w)
	if err != nil {
		return nil, err
	}
	p.lastUse = d.clock
	d.programs[k] = p
	return p, nil
}

func (d *FasterRCNN) evictLRU() {
	var oldK progKey
	var old *Program
	for k, p := range d.programs {
		if old == nil || p.lastUse < old.lastUse {
			oldK, old = k, p
		}
	}
	if old != nil {
		old.Machine.Close()
		delete(d.programs, oldK)
	}
}

// Programs returns how many compiled programs are cached.
func (d *FasterRCNN) Programs() int { return len(d.programs) }

// ReleasePrograms closes every cached program (the arena keeps its size).
func (d *FasterRCNN) ReleasePrograms() {
	for k, p := range d.programs {
		p.Machine.Close()
		delete(d.programs, k)
	}
}

// MemoryBytes returns the bytes held by the arena (values and conv
// scratch) and the shared image buffer.
func (d *FasterRCNN) MemoryBytes() int64 {
	var n int64
	if d.Arena != nil {
		n = d.Arena.Bytes()
	}
	return n + 4*int64(cap(d.inputs))
}

// build assembles the graph of a mode and shape (forward, then in
// training the losses and their gradients) and compiles it.
func (d *FasterRCNN) build(train bool, n, h, w int) (*Program, error) {
	p := &Program{Train: train, N: n, H: h, W: w, d: d, Losses: map[string]*G.Node{}}
	b := layers.NewBuilder(d.Reg)
	if d.Arena != nil {
		b.UseArena(d.Arena)
	}
	b.Training = train
	p.Builder = b
	if err := d.forward(p, b); err != nil {
		return nil, err
	}
	if train {
		if err := d.backward(p, b); err != nil {
			return nil, err
		}
	}
	if err := b.Err(); err != nil {
		return nil, err
	}
	var err error
	if p.Machine, err = b.Compile(); err != nil {
		return nil, err
	}
	return p, nil
}

// bindImages points the program's image input at the model's shared image
// buffer (grown to the largest batch seen), rebinding when it moved.
func (p *Program) bindImages() error {
	d, size := p.d, p.N*3*p.H*p.W
	if cap(d.inputs) < size {
		// the old buffer goes as soon as no program's input refers to it
		d.inputs = make([]float32, size)
		for _, q := range d.programs {
			if q != p && q.xval != nil {
				if err := q.bindImages(); err != nil {
					return err
				}
			}
		}
	}
	data := d.inputs[:size:size]
	if p.xval != nil {
		if cur := p.xval.Data().([]float32); &cur[0] == &data[0] {
			return nil
		}
	}
	p.xval = tensor.New(tensor.WithShape(p.N, 3, p.H, p.W), tensor.WithBacking(data))
	return G.Let(p.Images, p.xval)
}

// Gradient returns the gradient of parameter i of the last run
// (p.Params[i]); valid until the next run.
func (p *Program) Gradient(i int) []float32 {
	return p.Grads[i].Value().Data().([]float32)
}

// watchGrads installs the detector's GradWatch on this training program.
func (p *Program) watchGrads(gw func(*Program) ([][]int, func(int))) error {
	groups, ready := gw(p)
	nodes := make([][]*G.Node, len(groups))
	for k, g := range groups {
		for _, i := range g {
			if i < 0 || i >= len(p.Grads) {
				return fmt.Errorf("model: gradient group %d: parameter %d of %d", k, i, len(p.Grads))
			}
			nodes[k] = append(nodes[k], p.Grads[i])
		}
	}
	if err := p.Machine.WatchGroups(nodes, ready); err != nil {
		return fmt.Errorf("model: watching gradients: %w", err)
	}
	p.watched = true
	return nil
}

// Proposals returns the last run's proposals per image.
func (p *Program) Proposals() []rpn.Proposals { return p.proposals }

// setInput copies the batch into the program and, in training, sets the
// RPN's targets.
func (p *Program) setInput(in *Input) error {
	if err := in.Validate(p.Train); err != nil {
		return err
	}
	if err := p.bindImages(); err != nil {
		return err
	}
	copy(p.xval.Data().([]float32), in.Images)
	p.in = in
	if p.Train {
		sample := p.d.RPNSample
		if sample == nil {
			sample = rpn.DefaultSampler(p.d.Cfg.RPN, p.d.rng)
		}
		p.rpn.NormReduce = p.d.NormReduce
		if err := p.rpn.SetTargets(in.GT, sample); err != nil {
			return err
		}
	}
	return nil
}
