package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("../configs/*/*.yaml")
	files = append(files, more...)
	if len(files) < 2 {
		t.Fatalf("found %d configs", len(files))
	}
	for _, f := range files {
		if _, _, err := LoadFile(f, nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestTorchvisionConfigIsTorchvision(t *testing.T) {
	f, _, err := LoadFile("../configs/torchvision/fasterrcnn_resnet50_fpn.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := f.Model
	if m.RoI.NumClasses != 91 || m.RoI.SamplingRatio != 2 || m.RoI.Aligned || f.Input.Format != "torchvision" ||
		f.Input.MinSizeTest != 800 || f.Input.MaxSize != 1333 || len(f.Data.ClassNames) != 90 || m.Backbone.FrozenStages != 1 {
		t.Errorf("not torchvision's settings: %+v %+v", m.RoI, f.Input)
	}
	d, _, err := LoadFile("../configs/faster_r50_fpn_1x_coco.yaml", []string{"solver.base_lr=0.01"})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Model.RoI.Aligned || d.Model.RoI.NumClasses != 81 || d.Model.RPN.SmoothL1Beta != 0 || d.Solver.BaseLR != 0.01 || d.Model.RPN.PostNMSTopNTrain != 1000 {
		t.Errorf("detectron2-style config not applied: %+v", d.Model.RoI)
	}
}

func TestBadConfigs(t *testing.T) {
	for _, c := range []struct{ set, want string }{
		{"solver.lerning_rate=1", `did you mean "solver.warmup_iters"`},
		{"solver.max_iter=abc", "want an integer"},
		{"input.format=bgr", "input.format"},
		{"distill.loss=ssim", "teacher.config"},
		{"solver.steps=[5,3]", "increasing"},
	} {
		_, _, err := LoadFile("../configs/torchvision/fasterrcnn_resnet50_fpn.yaml", []string{c.set})
		if err == nil || !strings.Contains(err.Error(), c.want) && !strings.Contains(err.Error(), "unknown key") {
			t.Errorf("%s: error %v, want it to mention %q", c.set, err, c.want)
		}
	}
}
