package export_test

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/export"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/infer"
	"github.com/skd-go/skd/model"
)

// repoRoot is the module root (this package sits one level below).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// seeded builds the configuration's detector with seeded weights that give
// real detections: the usual initialisation, then (so that folding is
// exercised) random batch-norm statistics and affine parameters, and a
// predictor scaled up so that class scores are spread out instead of all
// near 1/num_classes.
func seeded(t *testing.T, cfg *config.File, seed int64) *model.FasterRCNN {
	t.Helper()
	det, err := model.New(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	det.Init(seed)
	rng := rand.New(rand.NewSource(seed + 1))
	last := ".bn2.weight" // the last BN of a residual branch: small, so that deep bodies stay tame
	if cfg.Model.Backbone.Depth >= 50 {
		last = ".bn3.weight"
	}
	for _, p := range det.Reg.Params() {
		d := p.Data()
		switch {
		case strings.HasSuffix(p.Name, last):
			for i := range d {
				d[i] = 0.1 + 0.2*rng.Float32()
			}
		case strings.HasSuffix(p.Name, ".running_var"), strings.HasSuffix(p.Name, "bn1.weight") || strings.HasSuffix(p.Name, "bn2.weight") ||
			strings.HasSuffix(p.Name, "bn3.weight") || strings.HasSuffix(p.Name, "downsample.1.weight"):
			for i := range d {
				d[i] = 0.5 + rng.Float32()
			}
		case strings.HasSuffix(p.Name, ".running_mean"), strings.HasSuffix(p.Name, "bn1.bias") || strings.HasSuffix(p.Name, "bn2.bias") ||
			strings.HasSuffix(p.Name, "bn3.bias") || strings.HasSuffix(p.Name, "downsample.1.bias"):
			for i := range d {
				d[i] = 0.1 * float32(rng.NormFloat64())
			}
		}
	}
	scale := func(name string, k float32) {
		p := det.Reg.Get(name)
		if p == nil {
			t.Fatalf("no parameter %s", name)
		}
		for i, v := range p.Data() {
			p.Data()[i] = v * k
		}
	}
	scale("rpn.head.cls_logits.weight", 30)
	scale("roi_heads.box_predictor.cls_score.weight", 30)
	scale("roi_heads.box_predictor.bbox_pred.weight", 5)
	return det
}

// nodeORT returns the node binary and the scripts/onnx directory, or skips
// the test saying why.
func nodeORT(t *testing.T) (string, string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("ONNX Runtime comparison skipped: node is not on PATH (install Node.js and run `npm ci --ignore-scripts` in scripts/onnx)")
	}
	dir := filepath.Join(repoRoot(t), "scripts", "onnx")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "onnxruntime-node")); err != nil {
		t.Skip("ONNX Runtime comparison skipped: onnxruntime-node is not installed (run `npm ci --ignore-scripts` in scripts/onnx; scripts/test.sh does when node is present)")
	}
	return node, dir
}

func photos(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "photos", "*.jpg"))
	if err != nil || len(paths) < 5 {
		t.Fatalf("test photos missing: %v %v", paths, err)
	}
	return paths
}

// checkAgainstORT exports det, runs it in ONNX Runtime on the photos at the
// given input sizes and compares with infer.Run (kddetect's path).
func checkAgainstORT(t *testing.T, cfg *config.File, det *model.FasterRCNN, sizes [][2]int) {
	checkAgainstORTOpset(t, cfg, det, sizes, 0)
}

func checkAgainstORTOpset(t *testing.T, cfg *config.File, det *model.FasterRCNN, sizes [][2]int, opset int) {
	onnxPath := exportTo(t, cfg, det, opset)
	for _, sz := range sizes {
		ref, got := runBoth(t, cfg, det, sz, onnxPath)
		cmp := export.Compare(ref, got)
		t.Logf("min size %d, max size %d: %v", sz[0], sz[1], cmp)
		for _, u := range cmp.Unmatched {
			t.Log("  unmatched:", u)
		}
		if len(ref) < 20 {
			t.Errorf("only %d detections from the Go detector: the check needs more", len(ref))
		}
		if !cmp.OK() {
			t.Errorf("ONNX Runtime differs from kddetect: %v", cmp)
		}
	}
}

// categoryIDs lists the config's category id per label.
func categoryIDs(cfg *config.File) []int64 {
	labels := infer.LabelsFromConfig(cfg)
	var ids []int64
	for i := 0; i < cfg.Model.RoI.NumClasses; i++ {
		ids = append(ids, labels.CategoryID(i))
	}
	return ids
}

// exportTo writes det as an ONNX model into a temporary directory.
func exportTo(t *testing.T, cfg *config.File, det *model.FasterRCNN, opset int) string {
	t.Helper()
	nodeORT(t) // skip before the work when ONNX Runtime is missing
	m, err := export.Build(det.Describe(), export.Options{Opset: opset, Format: cfg.Input.Format,
		SizeDivisible: cfg.Input.SizeDivisible, CategoryIDs: categoryIDs(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "model.onnx")
	if err := export.WriteFile(p, m); err != nil {
		t.Fatal(err)
	}
	return p
}

// runBoth runs the exported model in ONNX Runtime on the photos resized to
// sz (min, max), and infer.Run (kddetect's path) on the same photos; it
// returns both results.
func runBoth(t *testing.T, cfg *config.File, det *model.FasterRCNN, sz [2]int, onnxPath string) (ref, got []export.Result) {
	t.Helper()
	node, scripts := nodeORT(t)
	dir := t.TempDir()
	labels := infer.LabelsFromConfig(cfg)
	c := *cfg
	c.Input.MinSizeTest, c.Input.MaxSize = sz[0], sz[1]
	in := filepath.Join(dir, "inputs")
	man, err := export.PrepareInputs(photos(t), sz[0], sz[1], categoryIDs(cfg), in)
	if err != nil {
		t.Fatal(err)
	}
	var refs []infer.ImageRef
	for _, im := range man.Images {
		refs = append(refs, infer.ImageRef{Path: im.Path, ID: im.ImageID})
	}
	res, bad := infer.Run(det, refs, infer.Options{Transform: glue.Transform(&c, false), Labels: &labels}, nil)
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	refPath := filepath.Join(dir, "go.json")
	if err := infer.WriteResultsJSON(refPath, res, labels); err != nil {
		t.Fatal(err)
	}
	ortPath := filepath.Join(dir, "ort.json")
	cmd := exec.Command(node, filepath.Join(scripts, "ort_detect.js"), "--model", onnxPath, "--inputs", in, "--out", ortPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ort_detect: %v\n%s", err, out)
	}
	if ref, err = export.ReadResults(refPath); err != nil {
		t.Fatal(err)
	}
	if got, err = export.ReadResults(ortPath); err != nil {
		t.Fatal(err)
	}
	return ref, got
}

func loadConfig(t *testing.T, rel string, sets ...string) *config.File {
	t.Helper()
	cfg, _, err := config.LoadFile(filepath.Join(repoRoot(t), rel), sets)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestORTQuickstartStudent: the quickstart student (ResNet-18 at half
// width, training-mode BN folded, aligned adaptive RoIAlign, 6 classes).
func TestORTQuickstartStudent(t *testing.T) {
	nodeORT(t) // skips without node and onnxruntime-node
	cfg := loadConfig(t, "configs/quickstart/faster_r18_synth.yaml")
	det := seeded(t, cfg, 7)
	checkAgainstORT(t, cfg, det, [][2]int{{320, 352}, {224, 320}})
}

// TestORTTorchvisionR50 is torchvision's fasterrcnn_resnet50_fpn exactly
// (91 classes, RoIAlign sampling 2, not aligned) at small input sizes.
func TestORTTorchvisionR50(t *testing.T) {
	nodeORT(t) // skips without node and onnxruntime-node
	if testing.Short() && os.Getenv("SKD_ORT_R50") == "" {
		// about 30 s on 2 cores: scripts/test.sh sets SKD_ORT_R50 when node is present
		t.Skip("R50 ONNX Runtime comparison skipped in -short mode (set SKD_ORT_R50=1)")
	}
	cfg := loadConfig(t, "configs/torchvision/fasterrcnn_resnet50_fpn.yaml")
	det := seeded(t, cfg, 3)
	checkAgainstORT(t, cfg, det, [][2]int{{256, 384}, {320, 480}})
}

// TestORTOpset13: the lowest opset (RoiAlign without the half-pixel mode,
// so the student with torchvision's unaligned RoIAlign).
func TestORTOpset13(t *testing.T) {
	nodeORT(t) // skips without node and onnxruntime-node
	cfg := loadConfig(t, "configs/quickstart/faster_r18_synth.yaml", "model.roi_heads.aligned=false", "model.roi_heads.sampling_ratio=2")
	det := seeded(t, cfg, 11)
	checkAgainstORTOpset(t, cfg, det, [][2]int{{288, 352}}, export.MinOpset)
}

// TestORTDetectron2Style: configs/faster_r50_fpn_1x_coco.yaml's settings
// (aligned adaptive RoIAlign, detectron2's level formula, 81 classes) on a
// quarter-width bottleneck ResNet-50 with the stride on the 1x1 conv and
// caffe-format input, small enough for every test run.
func TestORTDetectron2Style(t *testing.T) {
	nodeORT(t) // skips without node and onnxruntime-node
	cfg := loadConfig(t, "configs/faster_r50_fpn_1x_coco.yaml", "model.backbone.width_mult=0.25", "model.backbone.stride_in_1x1=true",
		"model.fpn_channels=64", "model.roi_heads.representation_size=256", "input.format=caffe",
		"model.rpn.pre_nms_top_n_test=500", "model.rpn.post_nms_top_n_test=300")
	det := seeded(t, cfg, 5)
	checkAgainstORT(t, cfg, det, [][2]int{{256, 384}})
}

// TestORTEmpty: no detection survives (score threshold 1), and no
// proposal survives (RPN score threshold 1): the graph runs on empty
// tensors and returns nothing, as the Go detector.
func TestORTEmpty(t *testing.T) {
	nodeORT(t) // skips without node and onnxruntime-node
	for _, set := range []string{"model.roi_heads.score_thresh=1", "model.rpn.score_thresh=1"} {
		cfg := loadConfig(t, "configs/quickstart/faster_r18_synth.yaml", set)
		det := seeded(t, cfg, 7)
		ref, got := runBoth(t, cfg, det, [2]int{224, 320}, exportTo(t, cfg, det, 0))
		if len(ref) != 0 || len(got) != 0 {
			t.Errorf("%s: %d detections from Go, %d from ONNX Runtime; want none", set, len(ref), len(got))
		}
	}
}
