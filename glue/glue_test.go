package glue

import (
	"testing"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
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
