package export

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	pb "github.com/skd-go/skd/export/onnxpb"
)

// graph accumulates ONNX nodes and initializers with unique value names.
type graph struct {
	opset  int
	nodes  []*pb.NodeProto
	inits  []*pb.TensorProto
	seq    int
	consts map[string]string // memoised small constants
	err    error
}

func newGraph(opset int) *graph { return &graph{opset: opset, consts: map[string]string{}} }

// fail records the first error.
func (g *graph) fail(format string, a ...any) {
	if g.err == nil {
		g.err = fmt.Errorf(format, a...)
	}
}

func (g *graph) name(hint string) string {
	g.seq++
	return fmt.Sprintf("%s_%d", hint, g.seq)
}

// attr is one node attribute.
type attr = *pb.AttributeProto

func aInt(n string, v int64) attr {
	return &pb.AttributeProto{Name: proto.String(n), Type: pb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func aInts(n string, v ...int64) attr {
	return &pb.AttributeProto{Name: proto.String(n), Type: pb.AttributeProto_INTS.Enum(), Ints: v}
}

func aFloat(n string, v float32) attr {
	return &pb.AttributeProto{Name: proto.String(n), Type: pb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func aString(n, v string) attr {
	return &pb.AttributeProto{Name: proto.String(n), Type: pb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func aTensor(n string, t *pb.TensorProto) attr {
	return &pb.AttributeProto{Name: proto.String(n), Type: pb.AttributeProto_TENSOR.Enum(), T: t}
}

// op adds a node with nOut outputs and returns their names.
func (g *graph) op(typ string, inputs []string, nOut int, attrs ...attr) []string {
	outs := make([]string, nOut)
	for i := range outs {
		outs[i] = g.name(typ)
	}
	g.nodes = append(g.nodes, &pb.NodeProto{OpType: proto.String(typ), Name: proto.String(outs[0]), Input: inputs, Output: outs, Attribute: attrs})
	return outs
}

// op1 adds a node with one output.
func (g *graph) op1(typ string, inputs []string, attrs ...attr) string {
	return g.op(typ, inputs, 1, attrs...)[0]
}

func floatTensor(name string, dims []int64, data []float32) *pb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &pb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(pb.TensorProto_FLOAT)), RawData: raw}
}

func int64Tensor(name string, dims []int64, data []int64) *pb.TensorProto {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &pb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(pb.TensorProto_INT64)), RawData: raw}
}

// initF adds a float initializer (weights).
func (g *graph) initF(hint string, dims []int64, data []float32) string {
	n := g.name(hint)
	g.inits = append(g.inits, floatTensor(n, dims, data))
	return n
}

// constI returns a 1-D int64 constant (memoised).
func (g *graph) constI(v ...int64) string {
	key := fmt.Sprint("i", v)
	if n, ok := g.consts[key]; ok {
		return n
	}
	n := g.name("c")
	g.inits = append(g.inits, int64Tensor(n, []int64{int64(len(v))}, v))
	g.consts[key] = n
	return n
}

// scalarI returns a 0-D int64 constant.
func (g *graph) scalarI(v int64) string {
	key := fmt.Sprint("si", v)
	if n, ok := g.consts[key]; ok {
		return n
	}
	n := g.name("c")
	g.inits = append(g.inits, int64Tensor(n, nil, []int64{v}))
	g.consts[key] = n
	return n
}

// constF returns a float constant of the given shape (memoised).
func (g *graph) constF(dims []int64, v ...float32) string {
	key := fmt.Sprint("f", dims, v)
	if n, ok := g.consts[key]; ok {
		return n
	}
	n := g.name("c")
	g.inits = append(g.inits, floatTensor(n, dims, v))
	g.consts[key] = n
	return n
}

// constD returns a 0-D float64 constant.
func (g *graph) constD(v float64) string {
	key := fmt.Sprint("d", v)
	if n, ok := g.consts[key]; ok {
		return n
	}
	n := g.name("c")
	g.inits = append(g.inits, &pb.TensorProto{Name: proto.String(n), DataType: proto.Int32(int32(pb.TensorProto_DOUBLE)),
		RawData: binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))})
	g.consts[key] = n
	return n
}

// scalarF returns a 0-D float constant.
func (g *graph) scalarF(v float32) string { return g.constF(nil, v) }

// Shorthands for the ops used below.

func (g *graph) add(a, b string) string { return g.op1("Add", []string{a, b}) }
func (g *graph) sub(a, b string) string { return g.op1("Sub", []string{a, b}) }
func (g *graph) mul(a, b string) string { return g.op1("Mul", []string{a, b}) }
func (g *graph) div(a, b string) string { return g.op1("Div", []string{a, b}) }

func (g *graph) relu(x string) string { return g.op1("Relu", []string{x}) }

func (g *graph) gather(x, idx string, axis int64) string {
	return g.op1("Gather", []string{x, idx}, aInt("axis", axis))
}

func (g *graph) reshape(x string, shape ...int64) string {
	return g.op1("Reshape", []string{x, g.constI(shape...)})
}

func (g *graph) transpose(x string, perm ...int64) string {
	return g.op1("Transpose", []string{x}, aInts("perm", perm...))
}

func (g *graph) unsqueeze(x string, axes ...int64) string {
	return g.op1("Unsqueeze", []string{x, g.constI(axes...)})
}

func (g *graph) concat(axis int64, xs ...string) string {
	return g.op1("Concat", xs, aInt("axis", axis))
}

func (g *graph) cast(x string, to pb.TensorProto_DataType) string {
	return g.op1("Cast", []string{x}, aInt("to", int64(to)))
}

func (g *graph) shape(x string) string { return g.op1("Shape", []string{x}) }

// dim returns dimension i of x as a 1-D int64 tensor of one element.
func (g *graph) dim(x string, i int64) string { return g.gather(g.shape(x), g.constI(i), 0) }

// nonzero1 returns the indices (1-D int64) where the 1-D bool mask is true.
func (g *graph) nonzero1(mask string) string {
	return g.reshape(g.op1("NonZero", []string{mask}), -1)
}

// column returns column i of an [K, 4] tensor as [K].
func (g *graph) column(x string, i int64) string { return g.gather(x, g.scalarI(i), 1) }

// clip clamps x into [lo, hi] (0-D tensors).
func (g *graph) clip(x, lo, hi string) string { return g.op1("Clip", []string{x, lo, hi}) }

// sortDesc returns the permutation that sorts the 1-D float x in decreasing
// order (TopK over the whole tensor).
func (g *graph) sortDesc(x string) string {
	return g.op("TopK", []string{x, g.dim(x, 0)}, 2, aInt("axis", 0), aInt("largest", 1), aInt("sorted", 1))[1]
}

func valueInfo(name string, elem pb.TensorProto_DataType, dims ...any) *pb.ValueInfoProto {
	shape := &pb.TensorShapeProto{}
	for _, d := range dims {
		switch v := d.(type) {
		case int:
			shape.Dim = append(shape.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}})
		case string:
			shape.Dim = append(shape.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimParam{DimParam: v}})
		}
	}
	return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(int32(elem)), Shape: shape}}}}
}
