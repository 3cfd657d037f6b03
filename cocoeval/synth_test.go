package cocoeval_test

import (
	"slices"
	"testing"

	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/cocoeval/synth"
)

var small = synth.Config{Images: 150, Categories: 12, GTPerImage: 6, DetsPerImage: 30, CrowdFraction: 0.05, Seed: 7}

// TestSyntheticDeterministic: a random set with crowd regions and mixed
// sizes gives identical precision/recall arrays whatever the worker count,
// and the same numbers when the detections are shuffled between images
// (evaluation is per image; only the order within an image matters).
func TestSyntheticDeterministic(t *testing.T) {
	gt, dets, err := synth.Generate(small)
	if err != nil {
		t.Fatal(err)
	}
	var ref *cocoeval.Result
	for _, w := range []int{1, 3, 8} {
		p := cocoeval.DefaultParams()
		p.Workers = w
		res, err := cocoeval.Evaluate(gt, dets, p)
		if err != nil {
			t.Fatal(err)
		}
		if ref == nil {
			ref = res
			continue
		}
		if res.Stats != ref.Stats || !slices.Equal(res.Precision, ref.Precision) || !slices.Equal(res.Recall, ref.Recall) {
			t.Fatalf("workers %d differ", w)
		}
	}
	for i, s := range ref.Stats {
		if !(s > 0 && s < 1) {
			t.Errorf("%s = %v: the synthetic set should give values strictly between 0 and 1", cocoeval.StatNames[i], s)
		}
	}
	// reverse the image order of the detection list, keeping each image's
	// detections in order: the numbers must not change.
	byImg := map[int64][]cocoeval.Detection{}
	var order []int64
	for _, d := range dets {
		if _, ok := byImg[d.ImageID]; !ok {
			order = append(order, d.ImageID)
		}
		byImg[d.ImageID] = append(byImg[d.ImageID], d)
	}
	slices.Reverse(order)
	var re []cocoeval.Detection
	for _, id := range order {
		re = append(re, byImg[id]...)
	}
	res, err := cocoeval.Evaluate(gt, re, cocoeval.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats != ref.Stats {
		t.Errorf("image order changed the stats: %v vs %v", res.Stats, ref.Stats)
	}
}

// BenchmarkEvaluate times the evaluation on a small generated set; the
// full-size figure comes from scripts/cocoeval_bench (run under
// flock /tmp/bench.lock).
func BenchmarkEvaluate(b *testing.B) {
	cfg := small
	cfg.Images, cfg.Categories = 500, 80
	gt, dets, err := synth.Generate(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := cocoeval.Evaluate(gt, dets, cocoeval.DefaultParams()); err != nil {
			b.Fatal(err)
		}
	}
}
