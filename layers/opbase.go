package layers

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opBase carries what every custom op shares: a name for printing and a
// unique id in the hash so that Gorgonia never merges two op instances.
type opBase struct {
	name  string
	id    int
	cache *tensor.Dense // output used when the register's value does not fit
	slot  *memSlot      // where a planned program keeps this op's output
	seq   int           // the op's position in its planned program's tape
}

func (o *opBase) ReturnsPtr() bool      { return false }
func (o *opBase) CallsExtern() bool     { return false }
func (o *opBase) OverwritesInput() int  { return -1 }
func (o *opBase) String() string        { return o.name }
func (o *opBase) WriteHash(h hash.Hash) { fmt.Fprintf(h, "skd.%s#%d", o.name, o.id) }
func (o *opBase) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

// fnType returns the hm type of an op taking n tensors of the given
// dimensions and returning a tensor of outDims.
func fnType(outDims int, inDims ...int) hm.Type {
	a := hm.TypeVariable('a')
	ts := make([]hm.Type, 0, len(inDims)+1)
	for _, d := range inDims {
		ts = append(ts, G.TensorType{Dims: d, Of: a})
	}
	ts = append(ts, G.TensorType{Dims: outDims, Of: a})
	return hm.NewFnType(ts...)
}

// f32 returns the float32 data of a value.
func f32(v G.Value) ([]float32, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("expected *tensor.Dense, got %T", v)
	}
	data, ok := d.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("expected float32 data, got %v", d.Dtype())
	}
	return data, nil
}

// shapeOf returns a value's shape.
func shapeOf(v G.Value) tensor.Shape { return v.Shape() }

// out returns the tensor an op writes its result into: prealloc (the
// value TapeMachine's register held from its last write, this run or the
// previous one) when it is a float32 tensor of exactly the wanted shape,
// else the op's own cached tensor, allocated once. Either way a steady
// state run allocates nothing.
//
// Why this is safe: Gorgonia's register allocator gives a register to one
// live value at a time, and a value only ever sits in the register of the
// node that wrote it (in-place ops write back into their input's register
// when that one is dead). An op's cached tensor therefore only ever lives
// in that op's own output register, and a register's stale value is dead
// when the register is written. (Gorgonia's view ops, Reshape and Slice,
// break this by aliasing across registers: the training graphs use none.)
//
// In a planned program (Arena) the output is the op's slot in the arena
// instead: a view that is rebuilt only when the arena has moved.
func (o *opBase) out(prealloc G.Value, shape tensor.Shape) *tensor.Dense {
	if o.slot != nil && o.slot.arena.watch != nil {
		// every op before this one in the tape has finished
		o.slot.arena.watch.reached(o.seq)
	}
	if s, n := o.slot, shape.TotalSize(); s != nil && n > 0 && n <= s.n {
		data := s.data()[:n]
		if o.cache != nil && o.cache.Shape().Eq(shape) {
			if c, ok := o.cache.Data().([]float32); ok && len(c) > 0 && &c[0] == &data[0] {
				return o.cache
			}
		}
		o.cache = tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(data))
		return o.cache
	}
	if d, ok := prealloc.(*tensor.Dense); ok && fits(d, shape) {
		return d
	}
	if o.cache != nil && fits(o.cache, shape) {
		return o.cache
	}
	o.cache = tensor.New(tensor.WithShape(shape.Clone()...), tensor.Of(tensor.Float32))
	return o.cache
}

func fits(d *tensor.Dense, shape tensor.Shape) bool {
	if d.Dtype() != tensor.Float32 || !d.Shape().Eq(shape) || !d.IsNativelyAccessible() || d.IsView() {
		return false
	}
	_, ok := d.Data().([]float32)
	return ok
}

// shapesOf converts DimSizers to shapes.
func shapesOf(in []G.DimSizer) ([]tensor.Shape, error) {
	out := make([]tensor.Shape, len(in))
	for i, d := range in {
		s, ok := d.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("input %d: expected a tensor.Shape, got %T", i, d)
		}
		out[i] = s
	}
	return out, nil
}

func errMissing(what string) error { return fmt.Errorf("%s: missing input", what) }
