package layers

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/kernels"
)

// Builder assembles one Gorgonia graph for one input shape. It binds
// registry parameters to graph nodes (sharing their tensors, so every graph
// sees the same weights), tracks which nodes need a gradient (so frozen
// parts get no backward nodes at all), and records the first error so model
// code can chain layer calls and check Err once.
type Builder struct {
	G   *G.ExprGraph
	Reg *Registry
	// WS is scratch memory shared by every conv op of the graph: ops run one
	// after another, so one workspace suffices.
	WS *kernels.ConvWorkspace
	// Training marks a training graph: BNs with batch statistics
	// (BatchNorm2d.UseBatchStats) normalise with the batch's and update their
	// running statistics; otherwise every BN uses its stored statistics.
	Training bool

	arena     *Arena
	nodes     map[*Param]*G.Node
	needsGrad map[*G.Node]bool
	err       error
	seq       int
}

// NewBuilder returns a builder on a fresh graph.
func NewBuilder(reg *Registry) *Builder {
	return &Builder{
		G:         G.NewGraph(),
		Reg:       reg,
		WS:        &kernels.ConvWorkspace{},
		nodes:     map[*Param]*G.Node{},
		needsGrad: map[*G.Node]bool{},
	}
}

// UseArena makes the graph's values live in a (see Arena): call it before
// adding ops; Compile then plans the graph into the arena, and the
// convolutions share the arena's scratch.
func (b *Builder) UseArena(a *Arena) {
	b.arena = a
	b.WS = &a.WS
}

// Err returns the first error met while building.
func (b *Builder) Err() error { return b.err }

// Fail records err (the first one wins) and returns nil for chaining.
func (b *Builder) Fail(err error) *G.Node {
	if b.err == nil && err != nil {
		b.err = err
	}
	return nil
}

// Failed reports whether building already failed.
func (b *Builder) Failed() bool { return b.err != nil }

func (b *Builder) nextID() int { b.seq++; return b.seq }

// Param returns the graph node bound to p, creating it on first use.
func (b *Builder) Param(p *Param) *G.Node {
	if n, ok := b.nodes[p]; ok {
		return n
	}
	shape := p.Shape()
	n := G.NewTensor(b.G, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(p.Name), G.WithValue(p.Value))
	b.nodes[p] = n
	if p.Trainable() {
		b.needsGrad[n] = true
	}
	return n
}

// Input returns a new input node (no gradient) of the given shape.
func (b *Builder) Input(name string, shape ...int) *G.Node {
	return G.NewTensor(b.G, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name))
}

// InputRequiringGrad is Input for tests that differentiate with respect to
// the input.
func (b *Builder) InputRequiringGrad(name string, shape ...int) *G.Node {
	n := b.Input(name, shape...)
	b.needsGrad[n] = true
	return n
}

// NeedsGrad reports whether n depends on a trainable parameter (or a
// gradient-requiring input).
func (b *Builder) NeedsGrad(n *G.Node) bool { return n != nil && b.needsGrad[n] }

// MarkNeedsGrad records that out needs a gradient if any input does; ops
// built outside this package call it so that later layers know.
func (b *Builder) MarkNeedsGrad(out *G.Node, inputs ...*G.Node) {
	for _, in := range inputs {
		if b.needsGrad[in] {
			b.needsGrad[out] = true
			return
		}
	}
}

// TrainableNodes returns the nodes of trainable parameters used in this
// graph, with their parameters, in registry order.
func (b *Builder) TrainableNodes() ([]*G.Node, []*Param) {
	var ns []*G.Node
	var ps []*Param
	for _, p := range b.Reg.Params() {
		if n, ok := b.nodes[p]; ok && p.Trainable() {
			ns = append(ns, n)
			ps = append(ps, p)
		}
	}
	return ns, ps
}

// apply adds op to the graph and propagates the needs-grad flag.
func (b *Builder) apply(op G.Op, inputs ...*G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	for i, in := range inputs {
		if in == nil {
			return b.Fail(fmt.Errorf("%v: input %d is missing", op, i))
		}
	}
	out, err := G.ApplyOp(op, inputs...)
	if err != nil {
		return b.Fail(fmt.Errorf("%v: %w", op, err))
	}
	b.MarkNeedsGrad(out, inputs...)
	return out
}
