package glue

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/data/synth"
)

// Moved from infer/infer_test.go with the functions they test.

func TestTransform(t *testing.T) {
	cfg := config.Default()
	cfg.Input = config.InputConfig{Format: "caffe", MinSize: []int{640, 800}, MinSizeTest: 720, MaxSize: 1000, SizeDivisible: 64, FlipProb: 0.5}
	ev := Transform(&cfg, false)
	if len(ev.MinSizes) != 1 || ev.MinSizes[0] != 720 || ev.FlipProb != 0 || ev.MaxSize != 1000 || ev.Format != "caffe" || ev.SizeDivisible != 64 {
		t.Errorf("eval transform %+v", ev)
	}
	tr := Transform(&cfg, true)
	if len(tr.MinSizes) != 2 || tr.MinSizes[1] != 800 || tr.FlipProb != 0.5 {
		t.Errorf("train transform %+v", tr)
	}
	tr.MinSizes[0] = 1
	if cfg.Input.MinSize[0] != 640 {
		t.Error("train transform shares the config's slice")
	}
}

func TestToInput(t *testing.T) {
	img := data.NewImage(3, 40, 60)
	tc := data.TransformConfig{MinSizes: []int{20}, MaxSize: 100, Format: "torchvision", SizeDivisible: 32}
	s1, err := data.TransformSample(img, [][4]float32{{6, 4, 30, 20}}, []int{2}, tc, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := data.TransformSample(data.NewImage(3, 60, 30), nil, nil, tc, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := data.Collate([]*data.Sample{s1, s2}, 32)
	if err != nil {
		t.Fatal(err)
	}
	in := TrainInput(b, nil)
	if in.N != 2 || in.H != 64 || in.W != 32 || len(in.Images) != 2*3*64*32 {
		t.Fatalf("input %dx%dx%d, %d values", in.N, in.H, in.W, len(in.Images))
	}
	// 40x60 with min 20: scale 0.5 -> 20x30; 60x30: scale 20/30 -> 40x20.
	if in.Sizes[0] != [2]int{20, 30} || in.Sizes[1] != [2]int{40, 20} {
		t.Errorf("sizes %v", in.Sizes)
	}
	if len(in.GT[0]) != 4 || in.GT[0][0] != 3 || in.GT[0][3] != 10 || in.GTLabels[0][0] != 2 || len(in.GT[1]) != 0 {
		t.Errorf("gt %v labels %v", in.GT, in.GTLabels)
	}
	if err := in.Validate(true); err != nil {
		t.Error(err)
	}
	ev := Input(b)
	if ev.GT != nil || ev.GTLabels != nil {
		t.Error("eval input carries ground truth")
	}
	if err := ev.Validate(false); err != nil {
		t.Error(err)
	}
}

// TestValSplitRule: the one rule of training and kdeval: an explicit
// data.val wins over the synthetic set, which is generated (and
// announced) when it is the split; no split at all is not an error here.
func TestValSplitRule(t *testing.T) {
	cfg := config.Default()
	if _, ok, err := ValSplit(&cfg, nil); ok || err != nil {
		t.Errorf("no val split: ok %v err %v", ok, err)
	}
	dir := filepath.Join(t.TempDir(), "synth")
	cfg.Data.Synth = config.SynthConfig{Dir: dir, Train: 1, Val: 1, Seed: 2, Size: 64}
	var notes []string
	sp, ok, err := ValSplit(&cfg, func(m string) { notes = append(notes, m) })
	if err != nil || !ok || sp.Ann != synth.ValAnnotations(dir) || sp.Images != synth.ValImages(dir) {
		t.Fatalf("synthetic val split %+v ok %v err %v", sp, ok, err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "generating the synthetic set in "+dir) {
		t.Errorf("notices %q", notes)
	}
	if _, err := os.Stat(sp.Ann); err != nil {
		t.Error(err)
	}
	notes = nil
	tr, err := TrainSplit(&cfg, func(m string) { notes = append(notes, m) })
	if err != nil || tr.Ann != synth.TrainAnnotations(dir) || len(notes) != 0 {
		t.Errorf("train split %+v err %v notices %q", tr, err, notes)
	}
	cfg.Data.Val = config.DatasetConfig{Ann: "val.json", Images: "val/"}
	if sp, ok, err := ValSplit(&cfg, nil); err != nil || !ok || sp != (Split{"val.json", "val/"}) {
		t.Errorf("explicit data.val: %+v ok %v err %v", sp, ok, err)
	}
	cfg.Data.Synth.Dir = ""
	if _, err := TrainSplit(&cfg, nil); err == nil || !strings.Contains(err.Error(), "data.train.ann is not set") {
		t.Errorf("no train split: %v", err)
	}
}

// TestTrainInputLabels: ModelLabels maps contiguous labels to category
// ids for data.labels: category_id, and checks num_classes.
func TestTrainInputLabels(t *testing.T) {
	cfg := config.Default()
	ds := &data.Dataset{Categories: make([]data.Category, 2), LabelToCatID: []int64{0, 3, 7}}
	m, err := ModelLabels(&cfg, ds, "a.json")
	if err != nil || m != nil {
		t.Fatalf("contiguous: %v %v", m, err)
	}
	cfg.Data.Labels = "category_id"
	if m, err = ModelLabels(&cfg, ds, "a.json"); err != nil || len(m) != 3 {
		t.Fatalf("category_id: %v %v", m, err)
	}
	b := &data.Batch{N: 1, H: 4, W: 4, Images: make([]float32, 48), Items: []data.BatchItem{{H: 4, W: 4, Boxes: [][4]float32{{0, 0, 2, 2}, {1, 1, 3, 3}}, Labels: []int{2, 1}}}}
	in := TrainInput(b, m)
	if in.GTLabels[0][0] != 7 || in.GTLabels[0][1] != 3 || b.Items[0].Labels[0] != 2 {
		t.Errorf("labels %v (batch %v)", in.GTLabels, b.Items[0].Labels)
	}
	cfg.Model.RoI.NumClasses = 7
	if _, err := ModelLabels(&cfg, ds, "a.json"); err == nil || !strings.Contains(err.Error(), "needs 8") {
		t.Errorf("too few classes: %v", err)
	}
}

// TestKD: distill.* maps onto kd.Config; an unknown option is an error
// that lists the known ones.
func TestKD(t *testing.T) {
	cfg := config.Default()
	cfg.Distill = config.DistillConfig{Loss: "cwd", Weight: 3, Levels: []int{1, 2}, Options: map[string]float64{"tau": 2, "window": 7}}
	kc, err := KD(&cfg)
	if err != nil || kc.Loss != "cwd" || kc.Weight != 3 || kc.Tau != 2 || kc.Window != 7 || len(kc.Levels) != 2 {
		t.Errorf("%+v %v", kc, err)
	}
	cfg.Distill.Options["temperature"] = 1
	if _, err := KD(&cfg); err == nil || !strings.Contains(err.Error(), "distill.options.temperature is not a known option (mask_ratio, sigma, tau, window)") {
		t.Errorf("unknown option: %v", err)
	}
}
