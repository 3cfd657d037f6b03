// Package export writes a trained Faster R-CNN as an ONNX model that runs
// the whole inference path of model.FasterRCNN.Detect plus infer's mapping
// back to original pixels: normalisation, padding to the size divisor,
// backbone (every batch norm, frozen or training-mode, folded into its
// convolution with its running statistics), FPN, RPN head, anchors,
// proposal decoding, per-level top-k, clipping, small-box removal and NMS
// per level, MultiScaleRoIAlign (level assignment and one ONNX RoiAlign per
// level), box head and predictor, softmax, class-specific decoding, score
// threshold, per-class NMS and the detections-per-image cut.
//
// Inputs (batch of one image):
//
//	image      float32 [1, 3, H, W]  RGB, 0..255, already resized with the
//	                                 configuration's rule (data.ResizeScale:
//	                                 input.min_size_test / input.max_size,
//	                                 bilinear, torchvision's), not padded
//	orig_size  int64 [2]             the image's original (height, width)
//
// Outputs, as kddetect reports them (infer.ImageResult):
//
//	boxes   float32 [D, 4]  x1, y1, x2, y2 in original pixels, clipped
//	scores  float32 [D]     best first
//	labels  int64 [D]       the model's labels 1..num_classes-1 (the
//	                        metadata maps them to category ids and names)
//
// The resize stays outside the graph, as in mmdeploy's Faster R-CNN
// export: its output size follows torchvision's float32 rule, the project
// resizes the normalised image at full resolution before padding (so the
// resize is on the caller's side of any runtime anyway, with the JPEG
// decoding and EXIF orientation), and a fixed input size is what most
// deployment runtimes want to be given. The model's metadata_props record
// the resize settings (skd.min_size_test, skd.max_size) for the caller.
//
// Ops follow torchvision 0.14 (and so kddetect) exactly, including its
// choice between per-group NMS and the coordinate-offset trick (more or at
// most 1000 boxes). The exporter reads model.Description, the same list of
// parts the graph builder uses, and fails, naming it, on any part it cannot
// express or any registered parameter that no exported layer uses.
package export

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/skd-go/skd/backbone"
	pb "github.com/skd-go/skd/export/onnxpb"
	"github.com/skd-go/skd/layers"
	"github.com/skd-go/skd/model"
)

// Opset range the exporter emits and checks (ONNX 1.12's onnx.proto, IR 8).
const (
	DefaultOpset = 17
	MinOpset     = 13
	MaxOpset     = 17
)

// Options are the export settings besides the model.
type Options struct {
	// Opset is the ONNX opset (0: DefaultOpset).
	Opset int
	// Format is the normalisation, data.FormatTorchvision ("" too) or
	// data.FormatCaffe (config input.format).
	Format string
	// SizeDivisible pads H and W up to a multiple of it (config
	// input.size_divisible; 0: 32). It must be a multiple of 32.
	SizeDivisible int
	// MinSizeTest and MaxSize are recorded in the metadata (the resize the
	// caller does).
	MinSizeTest, MaxSize int
	// CategoryIDs and ClassNames, indexed by label (0: background), are
	// recorded in the metadata when set.
	CategoryIDs []int64
	ClassNames  []string
	// Doc is the model's doc_string (e.g. the config and weights it came from).
	Doc string
}

// UnsupportedError names a part of the model that cannot be exported.
type UnsupportedError struct {
	Part, Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("export: %s is not supported by the ONNX exporter: %s", e.Part, e.Reason)
}

// exporter holds the graph under construction and the parameters used.
type exporter struct {
	*graph
	d    *model.Description
	opts Options
	used map[*layers.Param]bool
	// convs memoises each convolution's initializers (the RPN head is
	// shared by the pyramid levels).
	convs map[*layers.Conv2d][]string
}

// Build returns the ONNX model of the described detector.
func Build(d *model.Description, opts Options) (*pb.ModelProto, error) {
	if opts.Opset == 0 {
		opts.Opset = DefaultOpset
	}
	if opts.Opset < MinOpset || opts.Opset > MaxOpset {
		return nil, fmt.Errorf("export: opset %d not supported (%d to %d)", opts.Opset, MinOpset, MaxOpset)
	}
	if opts.SizeDivisible == 0 {
		opts.SizeDivisible = 32
	}
	e := &exporter{graph: newGraph(opts.Opset), d: d, opts: opts, used: map[*layers.Param]bool{}, convs: map[*layers.Conv2d][]string{}}
	if err := e.check(); err != nil {
		return nil, err
	}
	boxes, scores, labels := e.detector("image", "orig_size")
	if e.err != nil {
		return nil, e.err
	}
	if err := e.coverage(); err != nil {
		return nil, err
	}
	g := &pb.GraphProto{
		Name:        proto.String("skd_faster_rcnn"),
		Node:        e.nodes,
		Initializer: e.inits,
		Input: []*pb.ValueInfoProto{
			valueInfo("image", pb.TensorProto_FLOAT, 1, 3, "height", "width"),
			valueInfo("orig_size", pb.TensorProto_INT64, 2),
		},
	}
	for _, o := range []struct {
		from, to string
		typ      pb.TensorProto_DataType
		dims     []any
	}{{boxes, "boxes", pb.TensorProto_FLOAT, []any{"detections", 4}}, {scores, "scores", pb.TensorProto_FLOAT, []any{"detections"}},
		{labels, "labels", pb.TensorProto_INT64, []any{"detections"}}} {
		g.Node = append(g.Node, &pb.NodeProto{OpType: proto.String("Identity"), Name: proto.String(o.to), Input: []string{o.from}, Output: []string{o.to}})
		g.Output = append(g.Output, valueInfo(o.to, o.typ, o.dims...))
	}
	m := &pb.ModelProto{
		IrVersion:       proto.Int64(int64(pb.Version_IR_VERSION)),
		OpsetImport:     []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(int64(opts.Opset))}},
		ProducerName:    proto.String("skd kdexport"),
		ProducerVersion: proto.String("1"),
		Graph:           g,
		MetadataProps:   e.metadata(),
	}
	if opts.Doc != "" {
		m.DocString = proto.String(opts.Doc)
	}
	return m, nil
}

// check rejects configurations the graph below does not express.
func (e *exporter) check() error {
	d := e.d
	switch e.opts.Format {
	case "", "torchvision", "caffe":
	default:
		return &UnsupportedError{"input.format " + strconv.Quote(e.opts.Format), "want torchvision or caffe"}
	}
	if e.opts.SizeDivisible%32 != 0 || e.opts.SizeDivisible < 0 {
		return &UnsupportedError{fmt.Sprintf("input.size_divisible %d", e.opts.SizeDivisible),
			"the RoIAlign scales are fixed at 1/4..1/32, which needs padding to a multiple of 32"}
	}
	if len(d.FPN.Inner) != 4 {
		return &UnsupportedError{fmt.Sprintf("an FPN over %d backbone levels", len(d.FPN.Inner)), "the exporter expects C2..C5"}
	}
	if d.Anchors.NumLevels() != 5 {
		return &UnsupportedError{fmt.Sprintf("model.rpn.anchor_sizes with %d levels", d.Anchors.NumLevels()), "the RPN runs on P2..P6 (5 levels)"}
	}
	pc := d.Pooler
	if pc.Aligned && e.opts.Opset < 16 {
		return &UnsupportedError{"model.roi_heads.aligned: true", fmt.Sprintf("RoiAlign's half-pixel mode needs opset >= 16, got %d", e.opts.Opset)}
	}
	if pc.CanonicalLevel != 0 && pc.CanonicalLevel != 4 {
		return &UnsupportedError{fmt.Sprintf("canonical level %d", pc.CanonicalLevel), "the exporter maps boxes with canonical level 4"}
	}
	if len(d.BoxHead) == 0 || d.Cls == nil || d.BBox == nil {
		return &UnsupportedError{"a box head without fully connected layers", "the exporter expects fc layers, cls_score and bbox_pred"}
	}
	return nil
}

// coverage fails on a registered parameter that no exported layer used.
func (e *exporter) coverage() error {
	for _, p := range e.d.Reg.Params() {
		if !e.used[p] {
			return &UnsupportedError{"model part " + strconv.Quote(p.Name), "no exported layer uses this parameter (a layer the exporter does not know)"}
		}
	}
	return nil
}

func (e *exporter) metadata() []*pb.StringStringEntryProto {
	kv := func(k, v string) *pb.StringStringEntryProto {
		return &pb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)}
	}
	f := e.opts.Format
	if f == "" {
		f = "torchvision"
	}
	out := []*pb.StringStringEntryProto{
		kv("skd.input", "image: float32 [1,3,H,W] RGB 0..255 resized (not padded, not normalised); orig_size: int64 [2] original (height, width)"),
		kv("skd.format", f),
		kv("skd.min_size_test", strconv.Itoa(e.opts.MinSizeTest)),
		kv("skd.max_size", strconv.Itoa(e.opts.MaxSize)),
		kv("skd.size_divisible", strconv.Itoa(e.opts.SizeDivisible)),
		kv("skd.num_classes", strconv.Itoa(e.d.Cfg.RoI.NumClasses)),
	}
	if e.opts.CategoryIDs != nil {
		b, _ := json.Marshal(e.opts.CategoryIDs)
		out = append(out, kv("skd.category_ids", string(b)))
	}
	if e.opts.ClassNames != nil {
		b, _ := json.Marshal(e.opts.ClassNames)
		out = append(out, kv("skd.class_names", string(b)))
	}
	return out
}

// param marks p used and returns its values.
func (e *exporter) param(p *layers.Param) []float32 {
	e.used[p] = true
	return p.Data()
}

// conv emits a convolution with its batch norm folded in (running
// statistics, as inference uses them), an optional residual sum and ReLU.
func (e *exporter) conv(x string, c *layers.Conv2d, bn *layers.FrozenBN, res string, relu bool) string {
	in, ok := e.convs[c]
	if !ok {
		in = e.convInit(c, bn)
		e.convs[c] = in
	}
	y := e.op1("Conv", append([]string{x}, in...), aInts("kernel_shape", int64(c.KH), int64(c.KW)), aInts("strides", int64(c.StrideH), int64(c.StrideW)),
		aInts("pads", int64(c.PadH), int64(c.PadW), int64(c.PadH), int64(c.PadW)), aInts("dilations", int64(c.DilH), int64(c.DilW)))
	if res != "" {
		y = e.add(y, res)
	}
	if relu {
		y = e.relu(y)
	}
	return y
}

// convInit adds a convolution's weight and bias initializers, its batch
// norm folded in.
func (e *exporter) convInit(c *layers.Conv2d, bn *layers.FrozenBN) []string {
	w := e.param(c.Weight)
	var bias []float32
	if c.Bias != nil {
		bias = append([]float32(nil), e.param(c.Bias)...)
	}
	if bn != nil {
		for _, p := range []*layers.Param{bn.Weight, bn.Bias, bn.Mean, bn.Var} {
			e.used[p] = true
		}
		scale, shift := make([]float32, c.Out), make([]float32, c.Out)
		bn.Fold(scale, shift)
		per := len(w) / c.Out
		folded := make([]float32, len(w))
		for k := 0; k < c.Out; k++ {
			for i := 0; i < per; i++ {
				folded[k*per+i] = w[k*per+i] * scale[k]
			}
		}
		w = folded
		nb := make([]float32, c.Out)
		for k := range nb {
			b := float32(0)
			if bias != nil {
				b = bias[k]
			}
			nb[k] = b*scale[k] + shift[k]
		}
		bias = nb
	}
	in := []string{e.initF(c.Name+".weight", []int64{int64(c.Out), int64(c.In), int64(c.KH), int64(c.KW)}, w)}
	if bias != nil {
		in = append(in, e.initF(c.Name+".bias", []int64{int64(c.Out)}, bias))
	}
	return in
}

func (e *exporter) unit(x string, u backbone.ConvUnit, res string) string {
	return e.conv(x, u.Conv, u.BN, res, u.ReLU)
}

func (e *exporter) maxPool(x string, k, s, p int) string {
	return e.op1("MaxPool", []string{x}, aInts("kernel_shape", int64(k), int64(k)), aInts("strides", int64(s), int64(s)),
		aInts("pads", int64(p), int64(p), int64(p), int64(p)))
}

// linear emits x W^T + b (x is [K, in]).
func (e *exporter) linear(x string, l *layers.Linear, relu bool) string {
	w := e.initF(l.Name+".weight", []int64{int64(l.Out), int64(l.In)}, e.param(l.Weight))
	b := e.initF(l.Name+".bias", []int64{int64(l.Out)}, e.param(l.Bias))
	y := e.op1("Gemm", []string{x, w, b}, aInt("transB", 1))
	if relu {
		y = e.relu(y)
	}
	return y
}

// normalize applies the input format and pads to the size divisor;
// returns the padded tensor.
func (e *exporter) normalize(img string) string {
	var x string
	if e.opts.Format == "caffe" {
		// BGR in 0..255 minus the BGR mean (data.Normalize)
		x = e.gather(img, e.constI(2, 1, 0), 1)
		x = e.sub(x, e.constF([]int64{1, 3, 1, 1}, 103.53, 116.28, 123.675))
	} else {
		// (v/255 - mean) / std, as data.Normalize
		x = e.div(img, e.scalarF(255))
		x = e.sub(x, e.constF([]int64{1, 3, 1, 1}, 0.485, 0.456, 0.406))
		x = e.div(x, e.constF([]int64{1, 3, 1, 1}, 0.229, 0.224, 0.225))
	}
	d := e.constI(int64(e.opts.SizeDivisible))
	padTo := func(n string) string { // (d - n % d) % d
		return e.op1("Mod", []string{e.sub(d, e.op1("Mod", []string{n, d})), d})
	}
	ph, pw := padTo(e.dim(img, 2)), padTo(e.dim(img, 3))
	z := e.constI(0)
	pads := e.concat(0, z, z, z, z, z, z, ph, pw)
	return e.op1("Pad", []string{x, pads, e.scalarF(0)}, aString("mode", "constant"))
}

// detector emits the whole graph and returns the output values.
func (e *exporter) detector(image, origSize string) (boxes, scores, labels string) {
	d := e.d
	x := e.normalize(image)
	// backbone
	plan := d.Body
	h := e.unit(x, plan.Stem, "")
	h = e.maxPool(h, plan.StemPool.Kernel, plan.StemPool.Stride, plan.StemPool.Pad)
	var c [4]string
	for s, st := range plan.Stages {
		for _, blk := range st {
			identity := h
			if blk.Down != nil {
				identity = e.unit(h, *blk.Down, "")
			}
			t := h
			for i, u := range blk.Convs {
				res := ""
				if i == len(blk.Convs)-1 {
					res = identity
				}
				t = e.unit(t, u, res)
			}
			h = t
		}
		c[s] = h
	}
	feats := e.fpn(c[:])
	props := e.proposals(x, image, feats)
	pooled := e.roiAlign(props, feats[:4])
	f := e.op1("Flatten", []string{pooled}, aInt("axis", 1))
	for _, l := range d.BoxHead {
		f = e.linear(f, l, true)
	}
	cls := e.linear(f, d.Cls, false)
	box := e.linear(f, d.BBox, false)
	return e.postprocess(cls, box, props, image, origSize)
}

// fpn follows fpn.FPN.Forward: P2..P5 and P6.
func (e *exporter) fpn(c []string) []string {
	f := e.d.FPN
	n := len(c)
	outs := make([]string, n+1)
	last := e.conv(c[n-1], f.Inner[n-1], nil, "", false)
	outs[n-1] = e.conv(last, f.Layer[n-1], nil, "", false)
	for i := n - 2; i >= 0; i-- {
		lat := e.conv(c[i], f.Inner[i], nil, "", false)
		// PyTorch 'nearest' to the lateral's size: src = floor(dst * in/out)
		top := e.op1("Resize", []string{last, "", "", e.shape(lat)}, aString("mode", "nearest"),
			aString("coordinate_transformation_mode", "asymmetric"), aString("nearest_mode", "floor"))
		last = e.add(lat, top)
		outs[i] = e.conv(last, f.Layer[i], nil, "", false)
	}
	outs[n] = e.maxPool(outs[n-1], 1, 2, 0)
	return outs
}

// decode is boxes.BoxCoder.Decode on columns: reference boxes (x1, y1, x2,
// y2) and deltas (dx, dy, dw, dh), broadcastable; returns x1, y1, x2, y2.
func (e *exporter) decode(ref [4]string, del [4]string, weights [4]float32) [4]string {
	clip := float32(math.Log(1000.0 / 16))
	w := e.sub(ref[2], ref[0])
	h := e.sub(ref[3], ref[1])
	half := e.scalarF(0.5)
	cx := e.add(ref[0], e.mul(half, w))
	cy := e.add(ref[1], e.mul(half, h))
	dx := e.div(del[0], e.scalarF(weights[0]))
	dy := e.div(del[1], e.scalarF(weights[1]))
	dw := e.op1("Min", []string{e.div(del[2], e.scalarF(weights[2])), e.scalarF(clip)})
	dh := e.op1("Min", []string{e.div(del[3], e.scalarF(weights[3])), e.scalarF(clip)})
	pcx := e.add(e.mul(dx, w), cx)
	pcy := e.add(e.mul(dy, h), cy)
	pw := e.mul(e.exp32(dw), w)
	ph := e.mul(e.exp32(dh), h)
	hw := e.mul(half, pw)
	hh := e.mul(half, ph)
	return [4]string{e.sub(pcx, hw), e.sub(pcy, hh), e.add(pcx, hw), e.add(pcy, hh)}
}

// clipBoxes clamps x to [0, w] and y to [0, h] (0-D float tensors).
func (e *exporter) clipBoxes(b [4]string, h, w string) [4]string {
	z := e.scalarF(0)
	return [4]string{e.clip(b[0], z, w), e.clip(b[1], z, h), e.clip(b[2], z, w), e.clip(b[3], z, h)}
}

// stack puts 4 columns of shape S into S x 4.
func (e *exporter) stack(b [4]string, axis int64) string {
	var u [4]string
	for i := range b {
		u[i] = e.unsqueeze(b[i], axis)
	}
	return e.concat(axis, u[:]...)
}

func (e *exporter) columns(b string) [4]string {
	return [4]string{e.column(b, 0), e.column(b, 1), e.column(b, 2), e.column(b, 3)}
}

// imageHW returns the unpadded image's height and width as 0-D floats.
func (e *exporter) imageHW(image string) (h, w string) {
	s := e.shape(image)
	h = e.cast(e.gather(s, e.scalarI(2), 0), pb.TensorProto_FLOAT)
	w = e.cast(e.gather(s, e.scalarI(3), 0), pb.TensorProto_FLOAT)
	return h, w
}

// bigNMS is the box count above which torchvision's batched_nms runs NMS
// per group (boxes.BatchedNMSTorchvision: more than 4000 coordinates).
const bigNMS = 1000

// batchedNMS is boxes.BatchedNMSTorchvision: NMS within each group
// (groups: int64 in [0, numGroups)), kept indices by decreasing score (ties:
// lower index first). ONNX Runtime's NonMaxSuppression visits equal scores
// in no defined order, so it is given each box's rank in the (score
// descending, index ascending) order instead of its score: the boxes are
// then visited exactly in torchvision's order.
func (e *exporter) batchedNMS(bx, scores, groups string, numGroups int, thr float64) string {
	k := e.dim(scores, 0)
	big := e.op1("Greater", []string{k, e.constI(bigNMS)})
	// coordinate trick: shift by group * (max coordinate + 1)
	flat := e.concat(0, e.reshape(bx, -1), e.constF([]int64{1}, -math.MaxFloat32))
	mx := e.op1("ReduceMax", []string{flat}, aInt("keepdims", 0))
	step := e.add(mx, e.scalarF(1))
	off := e.mul(e.cast(groups, pb.TensorProto_FLOAT), step)
	shifted := e.add(bx, e.unsqueeze(off, 1))
	useBoxes := e.op1("Where", []string{big, bx, shifted})
	useGroups := e.op1("Where", []string{big, groups, e.constI(0)})
	ng := e.reshape(e.op1("Where", []string{big, e.constI(int64(numGroups)), e.constI(1)}))
	cls := e.op1("Range", []string{e.scalarI(0), ng, e.scalarI(1)})
	mask := e.op1("Equal", []string{e.unsqueeze(cls, 1), e.unsqueeze(useGroups, 0)})
	// rank scores: K for the first box in order, 1 for the last (exact in
	// float32 up to 2^24 boxes)
	perm := e.sortDesc(scores)
	kf := e.cast(k, pb.TensorProto_FLOAT)
	pos := e.cast(e.op1("Range", []string{e.scalarI(0), e.reshape(k), e.scalarI(1)}), pb.TensorProto_FLOAT)
	rank := e.op1("ScatterElements", []string{e.mul(pos, e.scalarF(0)), perm, e.sub(kf, pos)}, aInt("axis", 0))
	s := e.op1("Where", []string{mask, e.unsqueeze(rank, 0), e.scalarF(-1)})
	sel := e.op1("NonMaxSuppression", []string{e.unsqueeze(useBoxes, 0), e.unsqueeze(s, 0),
		e.constI(math.MaxInt32), e.constF([]int64{1}, float32(thr)), e.constF([]int64{1}, -0.5)}, aInt("center_point_box", 0))
	idx := e.gather(sel, e.scalarI(2), 1)
	return e.gather(idx, e.sortDesc(e.gather(rank, idx, 0)), 0)
}

// proposals follows rpn.FilterProposals for one image: returns [P, 4].
func (e *exporter) proposals(padded, image string, feats []string) string {
	d := e.d
	cfg := d.Cfg.RPN
	hd := d.RPNHead
	imgH, imgW := e.dim(padded, 2), e.dim(padded, 3)
	var logits, deltas, anchors, levels []string
	for l, f := range feats {
		t := e.conv(f, hd.Conv, nil, "", true)
		obj := e.conv(t, hd.Cls, nil, "", false)  // [1, A, h, w]
		del := e.conv(t, hd.BBox, nil, "", false) // [1, 4A, h, w]
		// anchor i = (y*w + x)*A + a, as rpn.HeadOutputs
		objf := e.reshape(e.transpose(e.reshape(obj, 1, int64(hd.A), -1), 0, 2, 1), -1)
		delf := e.reshape(e.transpose(e.reshape(del, 1, int64(hd.A), 4, -1), 0, 3, 1, 2), -1, 4)
		// anchors: cell anchors shifted by (x, y) * stride, stride = image // feature
		fh, fw := e.dim(obj, 2), e.dim(obj, 3)
		sh, sw := e.div(imgH, fh), e.div(imgW, fw)
		xs := e.cast(e.mul(e.op1("Range", []string{e.scalarI(0), e.reshape(fw), e.scalarI(1)}), sw), pb.TensorProto_FLOAT)
		ys := e.cast(e.mul(e.op1("Range", []string{e.scalarI(0), e.reshape(fh), e.scalarI(1)}), sh), pb.TensorProto_FLOAT)
		grid := e.concat(0, fh, fw, e.constI(1))
		gx := e.op1("Expand", []string{e.unsqueeze(xs, 0, 2), grid})
		gy := e.op1("Expand", []string{e.unsqueeze(ys, 1, 2), grid})
		shifts := e.unsqueeze(e.concat(2, gx, gy, gx, gy), 2) // [h, w, 1, 4]
		cell, err := d.Anchors.CellAnchors(l)
		if err != nil {
			e.fail("export: %w", err)
			return ""
		}
		anc := e.reshape(e.add(shifts, e.constF([]int64{int64(len(cell) / 4), 4}, cell...)), -1, 4)
		// per-level top-k by logit
		kk := e.op1("Min", []string{e.dim(objf, 0), e.constI(int64(cfg.PreNMSTopNTest))})
		tk := e.op("TopK", []string{objf, kk}, 2, aInt("axis", 0), aInt("largest", 1), aInt("sorted", 1))
		logits = append(logits, tk[0])
		deltas = append(deltas, e.gather(delf, tk[1], 0))
		anchors = append(anchors, e.gather(anc, tk[1], 0))
		lv := int64Tensor("", []int64{1}, []int64{int64(l)})
		levels = append(levels, e.op1("ConstantOfShape", []string{e.shape(tk[0])}, aTensor("value", lv)))
	}
	lg := e.concat(0, logits...)
	del := e.concat(0, deltas...)
	anc := e.concat(0, anchors...)
	lvl := e.concat(0, levels...)
	b := e.decode(e.columns(anc), e.columns(del), [4]float32{1, 1, 1, 1})
	hf, wf := e.imageHW(image)
	b = e.clipBoxes(b, hf, wf)
	ms := e.scalarF(cfg.MinSize)
	keep := e.op1("And", []string{
		e.op1("GreaterOrEqual", []string{e.sub(b[2], b[0]), ms}),
		e.op1("GreaterOrEqual", []string{e.sub(b[3], b[1]), ms})})
	prob := e.sigmoid32(lg)
	keep = e.op1("And", []string{keep, e.op1("GreaterOrEqual", []string{prob, e.scalarF(cfg.ScoreThresh)})})
	idx := e.nonzero1(keep)
	bx := e.gather(e.stack(b, 1), idx, 0)
	sc := e.gather(prob, idx, 0)
	lv := e.gather(lvl, idx, 0)
	k := e.batchedNMS(bx, sc, lv, len(feats), cfg.NMSThresh)
	k = e.op1("Slice", []string{k, e.constI(0), e.constI(int64(cfg.PostNMSTopNTest)), e.constI(0)})
	return e.gather(bx, k, 0)
}

// roiAlign follows layers.MultiScaleRoIAlign on P2..P5: [P, C, S, S].
func (e *exporter) roiAlign(props string, feats []string) string {
	pc := e.d.Pooler
	s0 := pc.CanonicalScale
	if s0 == 0 {
		s0 = 224
	}
	eps := e.scalarF(float32(pc.Eps))
	b := e.columns(props)
	area := e.mul(e.sub(b[2], b[0]), e.sub(b[3], b[1]))
	r := e.div(e.op1("Sqrt", []string{area}), e.scalarF(float32(s0)))
	var t string
	if pc.EpsInsideLog {
		t = e.add(e.scalarF(4), e.log2f(e.add(r, eps)))
	} else {
		t = e.add(e.add(e.scalarF(4), e.log2f(r)), eps)
	}
	kMin, kMax := 2, 2+len(feats)-1
	lvl := e.clip(e.op1("Floor", []string{t}), e.scalarF(float32(kMin)), e.scalarF(float32(kMax)))
	lvl = e.cast(e.sub(lvl, e.scalarF(float32(kMin))), pb.TensorProto_INT64)
	mode := []attr{aString("mode", "avg"), aInt("output_height", int64(pc.OutputSize)), aInt("output_width", int64(pc.OutputSize)),
		aInt("sampling_ratio", int64(max(pc.SamplingRatio, 0)))}
	if e.opset >= 16 {
		m := "output_half_pixel" // torchvision aligned=False
		if pc.Aligned {
			m = "half_pixel"
		}
		mode = append(mode, aString("coordinate_transformation_mode", m))
	}
	var pooled, order []string
	for l, f := range feats {
		idx := e.nonzero1(e.op1("Equal", []string{lvl, e.scalarI(int64(l))}))
		rois := e.gather(props, idx, 0)
		zero := int64Tensor("", []int64{1}, []int64{0})
		bi := e.op1("ConstantOfShape", []string{e.shape(idx)}, aTensor("value", zero))
		a := append([]attr{aFloat("spatial_scale", float32(math.Ldexp(1, -(l+kMin))))}, mode...)
		pooled = append(pooled, e.op1("RoiAlign", []string{f, rois, bi}, a...))
		order = append(order, idx)
	}
	all := e.concat(0, pooled...)
	zeros := e.op1("ConstantOfShape", []string{e.shape(all)}, aTensor("value", floatTensor("", []int64{1}, []float32{0})))
	return e.op1("ScatterND", []string{zeros, e.unsqueeze(e.concat(0, order...), 1), all})
}

// postprocess follows roihead.Postprocess and infer's mapping to original
// pixels.
func (e *exporter) postprocess(cls, box, props, image, origSize string) (string, string, string) {
	cfg := e.d.Cfg.RoI
	nc := int64(cfg.NumClasses)
	probs := e.softmax32(cls)
	d3 := e.reshape(box, -1, nc, 4)
	var del [4]string
	for i := range del {
		del[i] = e.gather(d3, e.scalarI(int64(i)), 2) // [P, C]
	}
	var ref [4]string
	for i, c := range e.columns(props) {
		ref[i] = e.unsqueeze(c, 1) // [P, 1]
	}
	b := e.decode(ref, del, cfg.BBoxRegWeights)
	hf, wf := e.imageHW(image)
	b = e.clipBoxes(b, hf, wf)
	// drop the background, flatten (proposal-major, as roihead)
	sl := func(x string) string {
		return e.op1("Slice", []string{x, e.constI(1), e.constI(nc), e.constI(1)})
	}
	for i := range b {
		b[i] = e.reshape(sl(b[i]), -1)
	}
	sc := sl(probs)
	labs := e.op1("Expand", []string{e.unsqueeze(e.op1("Range", []string{e.scalarI(1), e.scalarI(nc), e.scalarI(1)}), 0), e.shape(sc)})
	sc, labs = e.reshape(sc, -1), e.reshape(labs, -1)
	ms := e.scalarF(cfg.MinSize)
	keep := e.op1("And", []string{e.op1("Greater", []string{sc, e.scalarF(cfg.ScoreThresh)}),
		e.op1("And", []string{e.op1("GreaterOrEqual", []string{e.sub(b[2], b[0]), ms}),
			e.op1("GreaterOrEqual", []string{e.sub(b[3], b[1]), ms})})})
	idx := e.nonzero1(keep)
	bx := e.gather(e.stack(b, 1), idx, 0)
	sc = e.gather(sc, idx, 0)
	labs = e.gather(labs, idx, 0)
	k := e.batchedNMS(bx, sc, labs, cfg.NumClasses, cfg.NMSThresh)
	k = e.op1("Slice", []string{k, e.constI(0), e.constI(int64(cfg.DetectionsPerImg)), e.constI(0)})
	bx, sc, labs = e.gather(bx, k, 0), e.gather(sc, k, 0), e.gather(labs, k, 0)
	// to original pixels: divide by resized/original per axis, clip
	orig := e.cast(origSize, pb.TensorProto_FLOAT)
	oh, ow := e.gather(orig, e.scalarI(0), 0), e.gather(orig, e.scalarI(1), 0)
	sy, sx := e.div(hf, oh), e.div(wf, ow)
	c := e.columns(bx)
	c = [4]string{e.div(c[0], sx), e.div(c[1], sy), e.div(c[2], sx), e.div(c[3], sy)}
	c = e.clipBoxes(c, oh, ow)
	return e.stack(c, 1), sc, labs
}

// WriteFile writes the model to path through a temporary file in the same
// directory, renamed into place once complete (no partial file on error).
func WriteFile(path string, m *pb.ModelProto) (err error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("export: encoding the model: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("export: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("export: writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("export: writing %s: %w", path, err)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// The transcendental functions are evaluated in float64 and rounded to
// float32, as the Go detector does (boxes.BoxCoder, rpn's sigmoid,
// roihead's softmax, the RoI level mapper): float32 kernels may differ in
// the last bit, which changes which scores tie at 1.0 and so the order NMS
// visits boxes in.

func (e *exporter) f64(x string) string { return e.cast(x, pb.TensorProto_DOUBLE) }
func (e *exporter) f32(x string) string { return e.cast(x, pb.TensorProto_FLOAT) }

// exp32 is float32(exp(float64(x))).
func (e *exporter) exp32(x string) string { return e.f32(e.op1("Exp", []string{e.f64(x)})) }

// sigmoid32 is float32(1 / (1 + exp(-float64(x)))).
func (e *exporter) sigmoid32(x string) string {
	one := e.constD(1)
	ex := e.op1("Exp", []string{e.op1("Neg", []string{e.f64(x)})})
	return e.f32(e.div(one, e.add(one, ex)))
}

// log2f is float32(log2(float64(x))).
func (e *exporter) log2f(x string) string {
	return e.f32(e.div(e.op1("Log", []string{e.f64(x)}), e.constD(math.Ln2)))
}

// softmax32 is roihead's row softmax: the row maximum subtracted in
// float32, exponentials, sum and quotient in float64.
func (e *exporter) softmax32(x string) string {
	m := e.op1("ReduceMax", []string{x}, aInts("axes", 1), aInt("keepdims", 1))
	ex := e.op1("Exp", []string{e.f64(e.sub(x, m))})
	sum := e.op1("ReduceSum", []string{ex, e.constI(1)}, aInt("keepdims", 1))
	return e.f32(e.div(ex, sum))
}
