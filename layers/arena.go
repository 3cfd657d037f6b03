package layers

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/kernels"
)

// Arena is the working memory of every planned program of one model: the
// values of a graph (activations, gradients, scratch of the backward pass)
// live at offsets into one shared buffer, chosen when the graph is compiled
// so that two values share memory only when their lifetimes do not
// overlap. Programs of the same model run one at a time, so they all
// compute in the same buffer: memory is that of the largest program, not
// the sum over the shapes seen (detectron2 and torchvision get the same
// from PyTorch's caching allocator, which frees a tensor after its last
// use and hands its block to the next one).
//
// What a run leaves in the arena (the parameters' gradients, the values
// read through Keep) is valid until the next run of any program on the
// same arena: read or copy it before that.
type Arena struct {
	buf []float32
	mem *arenaMem // owns buf: unmapped when collected
	// WS is the convolution scratch shared by every planned program.
	WS kernels.ConvWorkspace
	// Poison fills the buffer with NaN before every run (a test aid: an op
	// that reads memory it did not write then shows it).
	Poison bool

	plans []*memPlan
	// watch is the running machine's group watch (Machine.WatchGroups).
	watch *watch
}

// NewArena returns an empty arena; it grows to the largest program planned
// into it. Its buffer is mapped outside the Go heap and unmapped when the
// arena grows or is collected.
func NewArena() *Arena {
	a := &Arena{mem: &arenaMem{}}
	// the finalizer sits on a leaf object: the arena itself is part of
	// reference cycles (arena -> plans -> ops -> slots -> arena), and Go
	// never collects a cycle that holds a finalizer
	runtime.SetFinalizer(a.mem, func(m *arenaMem) { freeFloats(m.buf) })
	return a
}

// arenaMem holds the mapped buffer of an arena.
type arenaMem struct{ buf []float32 }

// Size returns the arena's size in float32 values (the conv scratch aside).
func (a *Arena) Size() int { return len(a.buf) }

// Bytes returns the memory the arena holds, conv scratch included.
func (a *Arena) Bytes() int64 { return 4 * int64(len(a.buf)+a.WS.Cap()) }

// memSlot is where one op writes its output: s.n values at s.off.
type memSlot struct {
	arena  *Arena
	off, n int
}

func (s *memSlot) data() []float32 { return s.arena.buf[s.off : s.off+s.n : s.off+s.n] }

// memPlan is one compiled graph's placement of its values.
type memPlan struct {
	g       *G.ExprGraph
	m       *Machine
	ops     []*opBase
	viewers []ArenaViewer
	peak    int
	tape    int // nodes in execution order (inputs included)
	// released: the arena grew since this plan last ran, so the graph's
	// bound values point into the old buffer until the next run.
	released bool
}

// memOp is every op of this package and those built on OpBase: their
// output goes through opBase.out, which honours a plan's slot.
type memOp interface{ base() *opBase }

func (o *opBase) base() *opBase { return o }

// ArenaViewer is an op that keeps slices of arena values between runs
// (its inputs, its slot); DropArenaViews forgets them when the arena's
// buffer is replaced, so that nothing can read the old one.
type ArenaViewer interface{ DropArenaViews() }

// ArenaSizer is an op whose place in the arena is not its output's size:
// an op with a scalar output that keeps a per-element buffer for its
// gradient op (which reads the output, so the buffer lives as long as the
// output) asks for that buffer's size and reads it with OpBase.Slot.
type ArenaSizer interface{ ArenaFloats() int }

// PlanStats describes a plan: the arena's size needed by the program and
// what the values would take without sharing.
type PlanStats struct {
	Values     int   // planned values
	PeakFloats int   // arena floats the program needs
	SumFloats  int64 // floats all values would take unshared
}

const arenaAlign = 16 // floats (64 bytes) between value starts

// plan places g's op outputs in the arena. order is the machine's execution
// order (Gorgonia compiles reverse(Sort(g))). A value is live from the op
// that writes it to the last op that reads it; roots (nothing reads them:
// gradients, the total loss), derivatives of inputs (Gorgonia keeps them
// too) and the inputs of Keep live to the end of the run. Placement is
// greedy by size (largest first, lowest offset that overlaps no placed
// value with an intersecting lifetime), as TFLite's arena planner does.
func (a *Arena) plan(g *G.ExprGraph) (*memPlan, PlanStats, error) {
	sorted, err := G.Sort(g)
	if err != nil {
		return nil, PlanStats{}, err
	}
	for i, j := 0, len(sorted)-1; i < j; i, j = i+1, j-1 {
		sorted[i], sorted[j] = sorted[j], sorted[i]
	}
	type value struct {
		op         *opBase
		def, last  int
		n          int
		off        int
		pinned     bool
		node       *G.Node
		keepsInput bool
	}
	idx := map[*G.Node]int{}
	var vals []*value
	end := len(sorted)
	for i, n := range sorted {
		op := n.Op()
		if op == nil || isConstant(op) {
			continue // inputs and constants: not op outputs
		}
		mo, ok := op.(memOp)
		if !ok {
			return nil, PlanStats{}, fmt.Errorf("op %v (%T) is not the project's own: its output cannot be placed", op, op)
		}
		v := &value{op: mo.base(), def: i, last: i, n: n.Shape().TotalSize(), node: n}
		if sz, ok := op.(ArenaSizer); ok {
			v.n = sz.ArenaFloats()
		}
		if v.n == 0 {
			v.n = 1
		}
		if _, ok := op.(*keepOp); ok {
			v.keepsInput = true
		}
		for _, d := range n.DerivOf() {
			if d.Op() == nil {
				v.pinned = true
			}
		}
		if g.To(n.ID()).Len() == 0 {
			v.pinned = true
		}
		idx[n] = len(vals)
		vals = append(vals, v)
	}
	for i, n := range sorted {
		it := g.From(n.ID())
		for it.Next() {
			c := it.Node().(*G.Node)
			if k, ok := idx[c]; ok {
				if vals[k].def >= i {
					return nil, PlanStats{}, fmt.Errorf("%v reads %v before it is computed", n, c)
				}
				if i > vals[k].last {
					vals[k].last = i
				}
				if j, ok := idx[n]; ok && vals[j].keepsInput {
					vals[k].pinned = true
				}
			}
		}
	}
	var st PlanStats
	order := make([]*value, len(vals))
	copy(order, vals)
	for _, v := range vals {
		if v.pinned {
			v.last = end
		}
		st.SumFloats += int64(v.n)
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].n > order[j].n })
	var placed []*value
	peak := 0
	for _, v := range order {
		// candidate offsets: 0 and the end of every placed value whose
		// lifetime meets v's, tried lowest first
		var live []*value
		for _, p := range placed {
			if p.def <= v.last && v.def <= p.last {
				live = append(live, p)
			}
		}
		sort.Slice(live, func(i, j int) bool { return live[i].off < live[j].off })
		off := 0
		for _, p := range live {
			if off+v.n <= p.off {
				break
			}
			if e := alignUp(p.off + p.n); e > off {
				off = e
			}
		}
		v.off = off
		placed = append(placed, v)
		if e := off + v.n; e > peak {
			peak = e
		}
	}
	st.Values, st.PeakFloats = len(vals), peak
	mp := &memPlan{g: g, peak: peak, tape: end}
	for _, v := range vals {
		v.op.slot = &memSlot{arena: a, off: v.off, n: v.n}
		v.op.seq = v.def
		mp.ops = append(mp.ops, v.op)
		if av, ok := v.node.Op().(ArenaViewer); ok {
			mp.viewers = append(mp.viewers, av)
		}
	}
	return mp, st, nil
}

func alignUp(n int) int { return (n + arenaAlign - 1) / arenaAlign * arenaAlign }

func isConstant(op G.Op) bool {
	return strings.HasPrefix(fmt.Sprintf("%T", op), "gorgonia.constant")
}

// reserve grows the buffer to n floats. The old buffer is unmapped: every
// other plan's graph unbinds its values, its machine drops its registers
// and its ops their views (all pointed into the old buffer and are
// rewritten by the plan's next run before anything reads them).
func (a *Arena) reserve(n int, except *memPlan) error {
	if n <= len(a.buf) {
		return nil
	}
	for _, p := range a.plans {
		if p == except {
			continue
		}
		p.release()
	}
	freeFloats(a.mem.buf)
	a.buf, a.mem.buf = nil, nil
	buf, err := allocFloats(n)
	if err != nil {
		return err
	}
	a.buf, a.mem.buf = buf, buf
	return nil
}

func (p *memPlan) release() {
	if p.released {
		return
	}
	p.g.UnbindAllNonInputs()
	if p.m != nil {
		p.m.vm.Reset()
	}
	for _, o := range p.ops {
		o.cache = nil
	}
	for _, op := range p.viewers {
		op.DropArenaViews()
	}
	p.released = true
}

// drop forgets a plan (its program was evicted).
func (a *Arena) drop(p *memPlan) {
	for i, q := range a.plans {
		if q == p {
			a.plans = append(a.plans[:i], a.plans[i+1:]...)
			break
		}
	}
	p.release()
}

func (a *Arena) beforeRun(p *memPlan) {
	p.released = false
	if a.Poison {
		nan := float32(math.NaN())
		for i := range a.buf {
			a.buf[i] = nan
		}
	}
}

// replaceGorgoniaAdds swaps the elementwise additions that G.Grad inserts
// to sum the gradients of a value read by several ops (ReduceAdd) for the
// project's addOp. Gorgonia's own add writes its result into one of its
// inputs or into whatever tensor its register last held, which would break
// the arena's placement; addOp writes to its planned slot. The swap sets
// the node's unexported op field (there is no public way to rewrite a
// node); TestGradAccumulationIsGorgoniaAdd pins both the fan-out add and
// the field, so that a Gorgonia upgrade that changes either fails there.
func replaceGorgoniaAdds(g *G.ExprGraph) (int, error) {
	swapped := 0
	for _, n := range g.AllNodes() {
		op := n.Op()
		if op == nil || fmt.Sprintf("%T", op) != "gorgonia.elemBinOp" {
			continue
		}
		if !strings.HasPrefix(op.String(), "+") {
			return swapped, fmt.Errorf("gorgonia op %v in the graph: only gradient sums (+) are supported", op)
		}
		var kids []*G.Node
		it := g.From(n.ID())
		for it.Next() {
			kids = append(kids, it.Node().(*G.Node))
		}
		shape := n.Shape()
		if n.Dtype() != tensor.Float32 {
			return swapped, fmt.Errorf("gorgonia add %v of %v", n, n.Dtype())
		}
		for _, k := range kids {
			if !k.Shape().Eq(shape) {
				return swapped, fmt.Errorf("gorgonia add %v: input %v of shape %v, output %v", n, k, k.Shape(), shape)
			}
		}
		f := reflect.ValueOf(n).Elem().FieldByName("op")
		if !f.IsValid() || f.Type() != reflect.TypeOf((*G.Op)(nil)).Elem() {
			return swapped, fmt.Errorf("gorgonia.Node has no op field of type Op: cannot replace its additions")
		}
		add := &addOp{opBase: opBase{name: "grad_sum", id: -int(exportedOpSeq.Add(1))}, shape: shape.Clone(), dims: len(shape)}
		reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(G.Op(add)))
		swapped++
	}
	return swapped, nil
}

// addOp is out = a + b for two float32 tensors of one shape (the sum of a
// value's gradients from its readers).
type addOp struct {
	opBase
	shape tensor.Shape
	dims  int
}

func (op *addOp) Arity() int { return 2 }
func (op *addOp) Type() hm.Type {
	if op.dims == 0 {
		a := hm.TypeVariable('a')
		return hm.NewFnType(a, a, a)
	}
	return fnType(op.dims, op.dims, op.dims)
}
func (op *addOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *addOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *addOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("%s: %d inputs, want 2", op.name, len(in))
	}
	if op.dims == 0 {
		a, err := scalarOf(in[0])
		if err != nil {
			return nil, err
		}
		b, err := scalarOf(in[1])
		if err != nil {
			return nil, err
		}
		return G.NewF32(a + b), nil
	}
	a, err := f32(in[0])
	if err != nil {
		return nil, err
	}
	b, err := f32(in[1])
	if err != nil {
		return nil, err
	}
	if len(a) != op.shape.TotalSize() || len(b) != len(a) {
		return nil, fmt.Errorf("%s: inputs of %d and %d values, graph built for %v", op.name, len(a), len(b), op.shape)
	}
	out := op.out(prealloc, op.shape)
	y := out.Data().([]float32)
	kernels.ParallelFor(len(y)/4096+1, func(lo, hi int) {
		s, e := lo*4096, hi*4096
		if e > len(y) {
			e = len(y)
		}
		for i := s; i < e; i++ {
			y[i] = a[i] + b[i]
		}
	})
	return out, nil
}
func (op *addOp) DiffWRT(int) []bool { return []bool{false, false} }
func (op *addOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%s: a gradient sum is not differentiated again", op.name)
}
