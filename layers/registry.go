// Package layers builds detection networks on Gorgonia graphs from the
// project's own custom ops (package kernels does the arithmetic).
//
// Parameters live in a Registry, named by their torchvision state-dict keys
// and shared by every compiled graph (one graph per padded input shape).
// A frozen parameter gets no gradient node and no gradient memory.
package layers

import (
	"fmt"
	"sort"

	"gorgonia.org/tensor"
)

// Param is one named parameter or buffer.
type Param struct {
	Name   string
	Value  *tensor.Dense
	Frozen bool // no gradient is computed or stored
	// Buffer marks non-trainable state (BN running stats), always frozen.
	Buffer bool
	// NoDecay marks parameters that some solvers exclude from weight decay
	// (norm layers and biases).
	NoDecay bool
}

// Data returns the parameter's values (shared, not a copy).
func (p *Param) Data() []float32 { return p.Value.Data().([]float32) }

// Shape returns the parameter's shape.
func (p *Param) Shape() []int { return []int(p.Value.Shape()) }

// Trainable reports whether the parameter receives gradients.
func (p *Param) Trainable() bool { return !p.Frozen && !p.Buffer }

// Registry holds a model's parameters in registration order.
type Registry struct {
	list []*Param
	byID map[string]*Param
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byID: map[string]*Param{}} }

// Add registers a zero-filled parameter. Registering the same name twice
// is a programming error reported as an error value by Validate; Add keeps
// the first registration.
func (r *Registry) Add(name string, shape ...int) *Param {
	if p, ok := r.byID[name]; ok {
		return p
	}
	p := &Param{Name: name, Value: tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))}
	r.list = append(r.list, p)
	r.byID[name] = p
	return p
}

// AddBuffer registers a non-trainable buffer.
func (r *Registry) AddBuffer(name string, shape ...int) *Param {
	p := r.Add(name, shape...)
	p.Buffer = true
	p.Frozen = true
	return p
}

// Get returns the named parameter or nil.
func (r *Registry) Get(name string) *Param { return r.byID[name] }

// Params returns all parameters in registration order.
func (r *Registry) Params() []*Param { return r.list }

// Trainable returns the parameters that receive gradients.
func (r *Registry) Trainable() []*Param {
	var out []*Param
	for _, p := range r.list {
		if p.Trainable() {
			out = append(out, p)
		}
	}
	return out
}

// Shapes returns name -> shape for every parameter and buffer (what a
// weights file must provide).
func (r *Registry) Shapes() map[string][]int {
	m := make(map[string][]int, len(r.list))
	for _, p := range r.list {
		m[p.Name] = append([]int(nil), p.Shape()...)
	}
	return m
}

// Names returns the sorted parameter names.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.list))
	for _, p := range r.list {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}

// Set copies data into the named parameter after checking its size.
func (r *Registry) Set(name string, shape []int, data []float32) error {
	p := r.byID[name]
	if p == nil {
		return fmt.Errorf("unknown parameter %q", name)
	}
	want := p.Shape()
	if !sameShape(want, shape) {
		return fmt.Errorf("parameter %q: shape %v in file, model expects %v", name, shape, want)
	}
	copy(p.Data(), data)
	return nil
}

// FreezePrefix marks every parameter whose name starts with prefix frozen.
func (r *Registry) FreezePrefix(prefix string) int {
	n := 0
	for _, p := range r.list {
		if len(p.Name) >= len(prefix) && p.Name[:len(prefix)] == prefix {
			p.Frozen = true
			n++
		}
	}
	return n
}

// NumTrainable returns the number of trainable scalars.
func (r *Registry) NumTrainable() int {
	n := 0
	for _, p := range r.Trainable() {
		n += p.Value.Shape().TotalSize()
	}
	return n
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
