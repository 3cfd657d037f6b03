package model

import (
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

	// per run
	in        *Input
	proposals []rpn.Proposals
}

type progKey struct {
	train   bool
	n, h, w int
}

// program returns the cached program for the mode and shape, building it
// on first use. This and compile are the program cache and compile step.
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
			op.Machine.Close()
		}
		delete(d.programs, old)
	}
	d.programs[k] = p
	d.order = append(d.order, k)
	return p, nil
}

// Programs returns how many compiled programs are cached.
func (d *FasterRCNN) Programs() int { return len(d.programs) }

// build assembles the graph of a mode and shape (forward, then in
// training the losses and their gradients) and compiles it.
func (d *FasterRCNN) build(train bool, n, h, w int) (*Program, error) {
	p := &Program{Train: train, N: n, H: h, W: w, d: d, Losses: map[string]*G.Node{}}
	b := layers.NewBuilder(d.Reg)
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
	if p.Machine, err = layers.NewMachine(b.G); err != nil {
		return nil, err
	}
	return p, nil
}

// Gradient returns the gradient of parameter i of the last run
// (p.Params[i]); valid until the next run.
func (p *Program) Gradient(i int) []float32 {
	return p.Grads[i].Value().Data().([]float32)
}

// Proposals returns the last run's proposals per image.
func (p *Program) Proposals() []rpn.Proposals { return p.proposals }
