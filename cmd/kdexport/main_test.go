package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/export"
	pb "github.com/skd-go/skd/export/onnxpb"
	"github.com/skd-go/skd/model"
)

const studentCfg = "../../configs/quickstart/faster_r18_synth.yaml"

// weightsFor saves seeded weights of a config's detector.
func weightsFor(t *testing.T, cfgPath, dir string) string {
	t.Helper()
	cfg, _, err := config.LoadFile(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	det, err := model.New(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	det.Init(1)
	p := filepath.Join(dir, strings.TrimSuffix(filepath.Base(cfgPath), ".yaml")+".safetensors")
	if err := model.SaveWeights(det.Reg, p, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExportWritesModel(t *testing.T) {
	dir := t.TempDir()
	w := weightsFor(t, studentCfg, dir)
	out := filepath.Join(dir, "student.onnx")
	code, stdout, stderr := runCmd("--config", studentCfg, "--weights", w, "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "wrote "+out) || !strings.Contains(stdout, "shorter side 320, longer at most 352") {
		t.Errorf("stdout %q", stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var m pb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.GetOpsetImport()[0].GetVersion() != export.DefaultOpset || len(m.GetGraph().GetNode()) < 100 {
		t.Errorf("opset %v, %d nodes", m.GetOpsetImport(), len(m.GetGraph().GetNode()))
	}
	meta := map[string]string{}
	for _, kv := range m.GetMetadataProps() {
		meta[kv.GetKey()] = kv.GetValue()
	}
	// the quickstart labels are contiguous: label l is category l
	if meta["skd.category_ids"] != "[0,1,2,3,4,5]" || meta["skd.class_names"] != `["background","circle","square","triangle","ring","cross"]` {
		t.Errorf("metadata %v", meta)
	}
}

// onlyFiles lists a directory's entries.
func onlyFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

// TestBadInputExit2NoFile: bad flags, an unsupported configuration and
// weights of another architecture exit 2, name the problem and leave no
// file (not even a temporary one).
func TestBadInputExit2NoFile(t *testing.T) {
	dir := t.TempDir()
	w := weightsFor(t, studentCfg, dir)
	out := filepath.Join(dir, "m.onnx")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--weights", w, "--out", out}, "--config is required"},
		{[]string{"--config", studentCfg, "--weights", w}, "--out is required"},
		{[]string{"--config", studentCfg, "--weights", w, "--out", out, "--opset", "9"}, "--opset 9"},
		{[]string{"--config", studentCfg, "--weights", filepath.Join(dir, "none.safetensors"), "--out", out}, "none.safetensors"},
		{[]string{"--config", studentCfg, "--weights", w, "--out", filepath.Join(dir, "no", "m.onnx")}, "does not exist"},
		// aligned RoIAlign needs opset 16
		{[]string{"--config", studentCfg, "--weights", w, "--out", out, "--opset", "13"}, "model.roi_heads.aligned"},
		{[]string{"--config", studentCfg, "--weights", w, "--out", out, "--set", "input.size_divisible=16"}, "input.size_divisible 16"},
		// the student's weights with the teacher's (ResNet-34) config
		{[]string{"--config", "../../configs/quickstart/teacher_r34_synth.yaml", "--weights", w, "--out", out}, "layer1.2"},
	} {
		code, _, stderr := runCmd(c.args...)
		if code != exitInput || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %q", c.args, code, stderr, c.want)
		}
		if got := onlyFiles(t, dir); len(got) != 1 {
			t.Fatalf("%v left files: %v", c.args, got)
		}
	}
}

func TestInputsAndCompare(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	code, _, stderr := runCmd("inputs", "--config", studentCfg, "--images", "../../export/testdata/photos", "--out", in)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(filepath.Join(in, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m export.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Images) != 5 || m.Images[0].FileName != "astronaut.jpg" || m.Images[0].ImageID != 1 {
		t.Fatalf("manifest %+v", m)
	}
	for _, im := range m.Images {
		_, h, w := data.ResizeScale(im.OrigH, im.OrigW, 320, 352)
		st, err := os.Stat(filepath.Join(in, im.Tensor))
		if err != nil || im.H != h || im.W != w || st.Size() != int64(4*3*h*w) {
			t.Errorf("%s: %dx%d (want %dx%d), tensor %v %v", im.FileName, im.H, im.W, h, w, st, err)
		}
	}
	// compare: a file with itself matches; a shifted copy does not
	ref := []export.Result{{ImageID: 1, CategoryID: 3, BBox: [4]float64{10, 10, 50, 40}, Score: 0.9},
		{ImageID: 1, CategoryID: 3, BBox: [4]float64{100, 10, 50, 40}, Score: 0.8}}
	write := func(name string, r []export.Result) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(r)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.json", ref)
	if code, out, _ := runCmd("compare", a, a); code != exitOK || !strings.Contains(out, "2 of 2") {
		t.Errorf("compare with itself: exit %d %q", code, out)
	}
	moved := append([]export.Result{}, ref...)
	moved[1].BBox[0] += 0.5 // IoU 0.99
	b2 := write("b.json", moved)
	if code, out, _ := runCmd("compare", a, b2); code != exitFailed || !strings.Contains(out, "1 of 2") {
		t.Errorf("compare with a moved box: exit %d %q", code, out)
	}
	if code, _, _ := runCmd("compare", a, filepath.Join(dir, "missing.json")); code != exitInput {
		t.Errorf("compare with a missing file: exit %d", code)
	}
}
