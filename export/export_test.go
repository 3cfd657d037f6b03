package export_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/skd-go/skd/export"
	pb "github.com/skd-go/skd/export/onnxpb"
)

// TestBuildGraphWellFormed exports the quickstart student and checks the
// model's interface and that the graph is well formed: every node input is
// a graph input, an initializer or an earlier node's output (topological
// order), every registered parameter is exported, and the file round-trips.
func TestBuildGraphWellFormed(t *testing.T) {
	cfg := loadConfig(t, "configs/quickstart/faster_r18_synth.yaml")
	det := seeded(t, cfg, 7)
	m, err := export.Build(det.Describe(), export.Options{MinSizeTest: 320, MaxSize: 352, CategoryIDs: []int64{-1, 1, 2, 3, 4, 5}})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GetOpsetImport()[0].GetVersion(); got != export.DefaultOpset {
		t.Errorf("opset %d, want %d", got, export.DefaultOpset)
	}
	g := m.GetGraph()
	var ins, outs []string
	for _, v := range g.GetInput() {
		ins = append(ins, v.GetName())
	}
	for _, v := range g.GetOutput() {
		outs = append(outs, v.GetName())
	}
	if strings.Join(ins, ",") != "image,orig_size" || strings.Join(outs, ",") != "boxes,scores,labels" {
		t.Fatalf("inputs %v outputs %v", ins, outs)
	}
	if et := g.GetOutput()[2].GetType().GetTensorType().GetElemType(); et != int32(pb.TensorProto_INT64) {
		t.Errorf("labels element type %d, want int64", et)
	}
	defined := map[string]bool{"": true, "image": true, "orig_size": true}
	var weights int
	for _, in := range g.GetInitializer() {
		defined[in.GetName()] = true
		if in.GetDataType() == int32(pb.TensorProto_FLOAT) {
			weights += len(in.GetRawData()) / 4
		}
	}
	ops := map[string]int{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			if !defined[in] {
				t.Fatalf("node %s (%s) reads %q before it is defined", n.GetName(), n.GetOpType(), in)
			}
		}
		for _, o := range n.GetOutput() {
			if defined[o] {
				t.Fatalf("value %q defined twice", o)
			}
			defined[o] = true
		}
		ops[n.GetOpType()]++
	}
	for _, o := range outs {
		if !defined[o] {
			t.Errorf("output %s is not computed", o)
		}
	}
	// 20 convolutions in the ResNet-18 body and 3 projections, 8 in the
	// FPN, 3 per RPN level; one RoiAlign per pooled level; 4 Gemm
	if ops["Conv"] != 20+8+3*5 || ops["RoiAlign"] != 4 || ops["Gemm"] != 4 || ops["NonMaxSuppression"] != 2 {
		t.Errorf("op counts %v", ops)
	}
	// every parameter is in the file once (BN folded: 4 per BN removed)
	var params, bn int
	for _, p := range det.Reg.Params() {
		n := len(p.Data())
		if strings.Contains(p.Name, "bn") || strings.Contains(p.Name, "downsample.1") {
			bn += n
			continue
		}
		params += n
	}
	// folded BNs become conv biases: one value per channel
	if weights < params || weights > params+bn/4+100 {
		t.Errorf("%d float values in initializers, want the %d weights plus folded BN biases (%d) and a few constants", weights, params, bn/4)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back pb.ModelProto
	if err := proto.Unmarshal(b, &back); err != nil || len(back.GetGraph().GetNode()) != len(g.GetNode()) {
		t.Fatalf("round trip: %v", err)
	}
	meta := map[string]string{}
	for _, kv := range m.GetMetadataProps() {
		meta[kv.GetKey()] = kv.GetValue()
	}
	if meta["skd.min_size_test"] != "320" || meta["skd.max_size"] != "352" || meta["skd.format"] != "torchvision" || meta["skd.category_ids"] != "[-1,1,2,3,4,5]" {
		t.Errorf("metadata %v", meta)
	}
}

// TestUnsupportedPartIsNamed: a parameter no exported layer uses (a layer
// the exporter does not know) fails the export, naming it.
func TestUnsupportedPartIsNamed(t *testing.T) {
	cfg := loadConfig(t, "configs/quickstart/faster_r18_synth.yaml")
	det := seeded(t, cfg, 7)
	det.Reg.Add("roi_heads.mask_head.conv1.weight", 4, 4, 3, 3)
	_, err := export.Build(det.Describe(), export.Options{})
	var ue *export.UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "roi_heads.mask_head.conv1.weight") {
		t.Fatalf("got %v, want an UnsupportedError naming the mask head parameter", err)
	}
}

func TestUnsupportedSettings(t *testing.T) {
	cfg := loadConfig(t, "configs/quickstart/faster_r18_synth.yaml") // aligned RoIAlign
	det := seeded(t, cfg, 7)
	for _, c := range []struct {
		opts export.Options
		want string
	}{
		{export.Options{Opset: 13}, "model.roi_heads.aligned"},
		{export.Options{Opset: 12}, "opset 12 not supported"},
		{export.Options{Opset: 18}, "opset 18 not supported"},
		{export.Options{SizeDivisible: 16}, "input.size_divisible 16"},
		{export.Options{Format: "bgr"}, `input.format "bgr"`},
	} {
		if _, err := export.Build(det.Describe(), c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error naming %q", c.opts, err, c.want)
		}
	}
}

// TestONNXChecker runs the ONNX project's own checker with full shape
// inference (Debian's python3-onnx) on exported models, at the lowest and
// the default opset.
func TestONNXChecker(t *testing.T) {
	py := ""
	for _, c := range []string{"/usr/bin/python3", "python3"} { // Debian's first, as scripts/golden_*.py
		if p, err := exec.LookPath(c); err == nil && exec.Command(p, "-c", "import onnx").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("onnx checker skipped: no python3 with the onnx module (Debian: apt-get install python3-onnx)")
	}
	dir := t.TempDir()
	for _, c := range []struct {
		opset int
		set   string
	}{{export.MinOpset, "model.roi_heads.aligned=false"}, {export.DefaultOpset, "model.roi_heads.aligned=true"}} {
		cfg := loadConfig(t, "configs/quickstart/faster_r18_synth.yaml", c.set)
		det := seeded(t, cfg, 7)
		m, err := export.Build(det.Describe(), export.Options{Opset: c.opset})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "m.onnx")
		if err := export.WriteFile(p, m); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, "-c", "import onnx, sys; onnx.checker.check_model(sys.argv[1], full_check=True); print('ok')", p).CombinedOutput()
		if err != nil {
			t.Errorf("opset %d: onnx checker: %v\n%s", c.opset, err, out)
		}
	}
}

// TestWriteFileLeavesNoPartialFile: a failed write leaves nothing behind.
func TestWriteFileLeavesNoPartialFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "missing", "m.onnx")
	if err := export.WriteFile(bad, &pb.ModelProto{}); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}
