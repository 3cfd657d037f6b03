package layers

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/kernels"
)

// RoIAlignConfig configures MultiScaleRoIAlign.
//
// torchvision's Faster R-CNN: OutputSize 7, SamplingRatio 2, Aligned false,
// CanonicalScale 224, CanonicalLevel 4, Eps 1e-6 (TorchvisionRoIAlign).
// detectron2: SamplingRatio 0 (adaptive), Aligned true, Eps 1e-8 inside the
// logarithm (Detectron2RoIAlign).
type RoIAlignConfig struct {
	// OutputSize is the side S of the pooled [K, C, S, S] output.
	OutputSize int
	// SamplingRatio is the sampling grid per bin and axis; <= 0 is adaptive
	// (ceil(roi size / S)).
	SamplingRatio int
	// Aligned shifts boxes by half a pixel (roi_align's aligned=True).
	Aligned bool
	// CanonicalScale is the box side mapped to CanonicalLevel (0: 224).
	CanonicalScale float64
	// CanonicalLevel is the level of a CanonicalScale box (0: 4).
	CanonicalLevel int
	// Eps is added to the level before the floor (torchvision's
	// LevelMapper: floor(k0 + log2(sqrt(area)/s0) + eps)), or inside the
	// logarithm when EpsInsideLog is set (detectron2:
	// floor(k0 + log2(sqrt(area)/s0 + eps))).
	Eps float64
	// EpsInsideLog selects detectron2's level formula.
	EpsInsideLog bool
}

// TorchvisionRoIAlign returns torchvision's Faster R-CNN box pooler
// configuration (MultiScaleRoIAlign(output_size=7, sampling_ratio=2)).
func TorchvisionRoIAlign() RoIAlignConfig {
	return RoIAlignConfig{OutputSize: 7, SamplingRatio: 2, CanonicalScale: 224, CanonicalLevel: 4, Eps: 1e-6}
}

// Detectron2RoIAlign returns detectron2's ROIAlignV2 box pooler
// configuration.
func Detectron2RoIAlign() RoIAlignConfig {
	return RoIAlignConfig{OutputSize: 7, SamplingRatio: 0, Aligned: true, CanonicalScale: 224, CanonicalLevel: 4, Eps: 1e-8, EpsInsideLog: true}
}

// levelMapper assigns regions to pyramid levels (torchvision's
// LevelMapper, float32 arithmetic as there).
type levelMapper struct {
	kMin, kMax int
	s0, k0     float32
	eps        float32
	epsInLog   bool
	single     bool // one level: every region goes there, no mapping
}

// level returns the index (0 = first level) of a region, or -1 for a
// padding row (negative batch index) or a box whose level is undefined
// (NaN area: torchvision's mapping yields no valid level, so it pools
// nothing).
func (m *levelMapper) level(roi []float32) int {
	if !(roi[0] >= 0) {
		return -1
	}
	if m.single {
		return 0
	}
	area := (roi[3] - roi[1]) * (roi[4] - roi[2])
	s := float32(math.Sqrt(float64(area)))
	var t float32
	if m.epsInLog {
		t = m.k0 + float32(math.Log2(float64(s/m.s0+m.eps)))
	} else {
		t = m.k0 + float32(math.Log2(float64(s/m.s0))) + m.eps
	}
	f := float32(math.Floor(float64(t)))
	if f != f {
		return -1
	}
	if f < float32(m.kMin) {
		f = float32(m.kMin)
	}
	if f > float32(m.kMax) {
		f = float32(m.kMax)
	}
	return int(f) - m.kMin
}

// assign fills rows[l] with the region indices of level l (and none with
// the rest), reusing the slices' memory.
func (m *levelMapper) assign(rois []float32, rows [][]int32, none []int32) ([][]int32, []int32) {
	for l := range rows {
		rows[l] = rows[l][:0]
	}
	none = none[:0]
	for r := 0; r < len(rois)/5; r++ {
		if l := m.level(rois[r*5 : r*5+5]); l >= 0 {
			rows[l] = append(rows[l], int32(r))
		} else {
			none = append(none, int32(r))
		}
	}
	return rows, none
}

// inferScale is torchvision's _infer_scale: 2^round(log2(feature height /
// image height)) (float32 log2, round half to even; the height decides).
func inferScale(featH, imageH int) float64 {
	approx := float32(float64(featH) / float64(imageH))
	return math.Pow(2, math.RoundToEven(float64(float32(math.Log2(float64(approx))))))
}

// msRoIAlignOp pools K regions from L feature maps: inputs rois [K, 5],
// then the L maps [N, C, Hl, Wl]; output [K, C, S, S].
type msRoIAlignOp struct {
	opBase
	k, n, c  int
	hs, ws   []int
	params   []kernels.RoIAlignParams
	mapper   levelMapper
	needDF   []bool
	rows     [][]int32
	none     []int32
	outShape tensor.Shape
}

func (op *msRoIAlignOp) Arity() int { return 1 + len(op.hs) }
func (op *msRoIAlignOp) Type() hm.Type {
	dims := []int{2}
	for range op.hs {
		dims = append(dims, 4)
	}
	return fnType(4, dims...)
}
func (op *msRoIAlignOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.outShape.Clone(), nil
}
func (op *msRoIAlignOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// checkRoIs returns the rois data after checking its shape.
func checkRoIs(name string, v G.Value, k int) ([]float32, error) {
	rois, err := f32(v)
	if err != nil {
		return nil, fmt.Errorf("%s: rois: %w", name, err)
	}
	if want := (tensor.Shape{k, 5}); !shapeOf(v).Eq(want) {
		return nil, fmt.Errorf("%s: rois shape %v, graph built for %v", name, shapeOf(v), want)
	}
	return rois, nil
}

func (op *msRoIAlignOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%s: %d inputs, want %d", op.name, len(in), op.Arity())
	}
	rois, err := checkRoIs(op.name, in[0], op.k)
	if err != nil {
		return nil, err
	}
	feats := make([][]float32, 0, 8)
	for l := range op.hs {
		f, err := f32(in[1+l])
		if err != nil {
			return nil, fmt.Errorf("%s: level %d: %w", op.name, l, err)
		}
		if want := (tensor.Shape{op.n, op.c, op.hs[l], op.ws[l]}); !shapeOf(in[1+l]).Eq(want) {
			return nil, fmt.Errorf("%s: level %d shape %v, graph built for %v", op.name, l, shapeOf(in[1+l]), want)
		}
		feats = append(feats, f)
	}
	out := op.out(prealloc, op.outShape)
	y := out.Data().([]float32)
	op.rows, op.none = op.mapper.assign(rois, op.rows, op.none)
	per := op.c * op.outShape[2] * op.outShape[3]
	for _, r := range op.none {
		clear(y[int(r)*per : int(r+1)*per])
	}
	for l, f := range feats {
		if len(op.rows[l]) == 0 {
			continue
		}
		if err := kernels.RoIAlignForwardRows(op.params[l], f, op.n, op.c, op.hs[l], op.ws[l], rois, op.rows[l], y); err != nil {
			return nil, fmt.Errorf("%s: level %d: %w", op.name, l, err)
		}
	}
	return out, nil
}

func (op *msRoIAlignOp) DiffWRT(int) []bool {
	return append([]bool{false}, op.needDF...)
}

func (op *msRoIAlignOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	ret := make(G.Nodes, len(inputs))
	for l, need := range op.needDF {
		if !need {
			continue
		}
		bwd := &msRoIAlignBwdOp{opBase: opBase{name: fmt.Sprintf("%s.dp%d", op.name, l), id: op.id}, fwd: op, level: l, rows: make([][]int32, len(op.hs))}
		dx, err := G.ApplyOp(bwd, inputs[0], grad)
		if err != nil {
			return nil, err
		}
		ret[1+l] = dx
	}
	return ret, nil
}

// msRoIAlignBwdOp is the gradient of one level's map: inputs rois and the
// output gradient, output [N, C, Hl, Wl]. It recomputes the level
// assignment from rois (cheap) rather than relying on the forward's state.
type msRoIAlignBwdOp struct {
	opBase
	fwd   *msRoIAlignOp
	level int
	rows  [][]int32
	none  []int32
}

func (op *msRoIAlignBwdOp) Arity() int    { return 2 }
func (op *msRoIAlignBwdOp) Type() hm.Type { return fnType(4, 2, 4) }
func (op *msRoIAlignBwdOp) shape() tensor.Shape {
	f := op.fwd
	return tensor.Shape{f.n, f.c, f.hs[op.level], f.ws[op.level]}
}
func (op *msRoIAlignBwdOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape(), nil }
func (op *msRoIAlignBwdOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *msRoIAlignBwdOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	f := op.fwd
	rois, err := checkRoIs(op.name, in[0], f.k)
	if err != nil {
		return nil, err
	}
	dy, err := f32(in[1])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	if !shapeOf(in[1]).Eq(f.outShape) {
		return nil, fmt.Errorf("%s: gradient shape %v, want %v", op.name, shapeOf(in[1]), f.outShape)
	}
	out := op.out(prealloc, op.shape())
	dx := out.Data().([]float32)
	clear(dx)
	op.rows, op.none = f.mapper.assign(rois, op.rows, op.none)
	rows := op.rows[op.level]
	if len(rows) == 0 {
		return out, nil
	}
	if err := kernels.RoIAlignBackwardRows(f.params[op.level], dy, f.n, f.c, f.hs[op.level], f.ws[op.level], rois, rows, dx); err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	return out, nil
}

// MultiScaleRoIAlign pools every region of rois ([K, 5] rows: batch index,
// x1, y1, x2, y2 in image coordinates; a negative batch index marks a
// padding row, pooled to zeros) from the pyramid levels feats (finest
// first, e.g. P2..P5, each [N, C, Hl, Wl]) into [K, C, S, S], exactly as
// torchvision's MultiScaleRoIAlign: each level's scale is 2^round(log2(Hl /
// imageH)) (imageH x imageW is the padded batch size), a region goes to
// level floor(k0 + log2(sqrt(area)/s0) + eps) clamped to the levels
// present, and is pooled there by RoIAlign with that scale.
//
// The output is not differentiable with respect to rois (torchvision
// detaches proposals); each level gets a gradient when it needs one. The
// levels must be consecutive (each scale half the previous one).
func (b *Builder) MultiScaleRoIAlign(rois *G.Node, feats []*G.Node, imageH, imageW int, cfg RoIAlignConfig) *G.Node {
	fail := func(format string, a ...any) *G.Node {
		return b.Fail(fmt.Errorf("multiscale roialign: "+format, a...))
	}
	if b.err != nil {
		return nil
	}
	if rois == nil {
		return fail("missing rois")
	}
	if len(feats) == 0 {
		return fail("no feature maps")
	}
	if cfg.OutputSize <= 0 {
		return fail("output size %d must be positive", cfg.OutputSize)
	}
	if imageH <= 0 || imageW <= 0 {
		return fail("image size %dx%d must be positive", imageH, imageW)
	}
	rs := rois.Shape()
	if len(rs) != 2 || rs[1] != 5 || rs[0] <= 0 {
		return fail("rois shape %v, want [K 5] with K > 0", rs)
	}
	if rois.Dtype() != tensor.Float32 {
		return fail("rois dtype %v, want float32", rois.Dtype())
	}
	s0 := cfg.CanonicalScale
	if s0 == 0 {
		s0 = 224
	}
	k0 := cfg.CanonicalLevel
	if k0 == 0 {
		k0 = 4
	}
	if !(s0 > 0) || math.IsInf(s0, 0) {
		return fail("canonical scale %g must be positive", s0)
	}
	op := &msRoIAlignOp{opBase: opBase{name: "msroialign", id: b.nextID()}, k: rs[0]}
	scales := make([]float64, len(feats))
	for l, f := range feats {
		if f == nil {
			return fail("level %d is missing", l)
		}
		s := f.Shape()
		if len(s) != 4 || s[0] <= 0 || s[1] <= 0 || s[2] <= 0 || s[3] <= 0 {
			return fail("level %d shape %v is not NCHW", l, s)
		}
		if l == 0 {
			op.n, op.c = s[0], s[1]
		} else if s[0] != op.n || s[1] != op.c {
			return fail("level %d shape %v: batch and channels differ from level 0's [%d %d]", l, s, op.n, op.c)
		}
		scales[l] = inferScale(s[2], imageH)
		if l > 0 && scales[l] != scales[l-1]/2 {
			return fail("level %d scale %g does not follow level %d's %g (levels must be consecutive)", l, scales[l], l-1, scales[l-1])
		}
		op.hs = append(op.hs, s[2])
		op.ws = append(op.ws, s[3])
		op.params = append(op.params, kernels.RoIAlignParams{
			PooledH: cfg.OutputSize, PooledW: cfg.OutputSize, SpatialScale: float32(scales[l]),
			SamplingRatio: cfg.SamplingRatio, Aligned: cfg.Aligned,
		})
		op.needDF = append(op.needDF, b.NeedsGrad(f))
	}
	op.mapper = levelMapper{
		kMin: int(-math.Log2(scales[0])), kMax: int(-math.Log2(scales[len(scales)-1])),
		s0: float32(s0), k0: float32(k0), eps: float32(cfg.Eps), epsInLog: cfg.EpsInsideLog,
		single: len(feats) == 1,
	}
	op.rows = make([][]int32, len(feats))
	op.outShape = tensor.Shape{op.k, op.c, cfg.OutputSize, cfg.OutputSize}
	inputs := append([]*G.Node{rois}, feats...)
	out, err := G.ApplyOp(op, inputs...)
	if err != nil {
		return b.Fail(fmt.Errorf("%v: %w", op, err))
	}
	// the rois never carry a gradient through this op
	b.MarkNeedsGrad(out, feats...)
	return out
}
