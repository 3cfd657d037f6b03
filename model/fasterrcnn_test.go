package model

import (
	"math"
	"testing"

	"github.com/skd-go/skd/internal/detrand"
)

// TinyConfig is a small detector for tests.
func tinyConfig() Config {
	c := Defaults()
	c.Backbone.Depth = 18
	c.Backbone.WidthMult = 0.125
	c.FPNChannels = 16
	c.RoI.RepresentationSize = 32
	c.RoI.NumClasses = 4
	c.RoI.BatchSizePerImg = 64
	c.RPN.PreNMSTopNTrain, c.RPN.PostNMSTopNTrain = 200, 100
	c.RPN.PreNMSTopNTest, c.RPN.PostNMSTopNTest = 100, 50
	c.RPN.BatchSizePerImg = 64
	return c
}

func tinyInput(n, h, w int) *Input {
	in := &Input{N: n, H: h, W: w, Images: detrand.Symmetric("img", n*3*h*w, 1)}
	for i := 0; i < n; i++ {
		in.Sizes = append(in.Sizes, [2]int{h - 3*i, w - 5*i})
		in.GT = append(in.GT, []float32{4, 6, 30, 40, 20 + float32(i), 10, 60, 50})
		in.GTLabels = append(in.GTLabels, []int{1, 3})
	}
	return in
}

func TestTrainStepAndDetectRun(t *testing.T) {
	d, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	d.Init(1)
	in := tinyInput(2, 64, 96)
	for it := 0; it < 2; it++ {
		l, p, err := d.TrainStep(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CheckFinite(); err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for k, v := range l {
			if k != "total" {
				sum += v
			}
		}
		if math.Abs(sum-l["total"]) > 1e-5*math.Abs(sum) {
			t.Errorf("total %v != sum of parts %v", l["total"], sum)
		}
		if l["loss_objectness"] <= 0 || l["loss_classifier"] <= 0 {
			t.Errorf("losses %v", l)
		}
		nonzero := 0
		for i := range p.Params {
			for _, g := range p.Gradient(i) {
				if g != 0 {
					nonzero++
					break
				}
			}
		}
		if nonzero < len(p.Params)/2 {
			t.Errorf("only %d of %d parameters got a gradient", nonzero, len(p.Params))
		}
		t.Logf("iteration %d: %v", it, l)
	}
	dets, _, err := d.Detect(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 2 {
		t.Fatalf("%d detection sets", len(dets))
	}
	if d.Programs() != 2 {
		t.Errorf("%d programs cached, want 2 (train, eval)", d.Programs())
	}
}
