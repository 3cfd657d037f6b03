package roihead

import (
	"math/rand/v2"
	"testing"
)

// TestStageSelectInference: each image gets its first PerImage proposals
// in its own block of rows; the rest of the rows are marked unused (-1).
func TestStageSelectInference(t *testing.T) {
	s := NewStage(Defaults(), 2, false, 2, false)
	if s.Rows() != 4 {
		t.Fatalf("%d rows, want 4", s.Rows())
	}
	out := make([]float32, 5*s.Rows())
	props := [][]float32{{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}, {1, 1, 2, 2}}
	if err := s.Select(props, nil, nil, nil, out); err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 0, 0, 1, 1, 0, 2, 2, 3, 3, 1, 1, 1, 2, 2, -1, 0, 0, 0, 0}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("rows %v, want %v", out, want)
		}
	}
	if len(s.RoIs(0)) != 8 || len(s.RoIs(1)) != 4 {
		t.Errorf("RoIs %v %v", s.RoIs(0), s.RoIs(1))
	}
}

// TestStageSelectTraining: the sampled RoIs fill the rows, the class
// labels (padding -1) and the box targets at the deltas of each
// positive's class, as SampleProposals returns them; the norm is the
// number sampled.
func TestStageSelectTraining(t *testing.T) {
	cfg := Defaults()
	cfg.NumClasses, cfg.BatchSizePerImg = 3, 8
	s := NewStage(cfg, 1, true, 0, false)
	props := [][]float32{{10, 10, 50, 50, 60, 60, 90, 90, 11, 12, 49, 52}}
	gt := [][]float32{{10, 10, 50, 50}}
	labels := [][]int{{2}}
	out := make([]float32, 5*s.Rows())
	sample := DefaultSampler(cfg, rand.New(rand.NewPCG(1, 2)))
	if err := s.Select(props, gt, labels, sample, out); err != nil {
		t.Fatal(err)
	}
	ref, err := SampleProposals(0, props[0], gt[0], labels[0], cfg, DefaultSampler(cfg, rand.New(rand.NewPCG(1, 2))))
	if err != nil {
		t.Fatal(err)
	}
	k := len(ref.Labels)
	if k == 0 || s.ce.Norm != float32(k) || s.box.Norm != float32(k) {
		t.Fatalf("%d sampled, norms %v %v", k, s.ce.Norm, s.box.Norm)
	}
	pos := 0
	for j := 0; j < s.Rows(); j++ {
		if j >= k {
			if out[5*j] != -1 || s.ce.Label[j] != -1 {
				t.Errorf("row %d: batch index %v label %d, want unused", j, out[5*j], s.ce.Label[j])
			}
			continue
		}
		if out[5*j] != 0 || out[5*j+1] != ref.Boxes[4*j] || int(s.ce.Label[j]) != ref.Labels[j] {
			t.Errorf("row %d: %v label %d, want box %v label %d", j, out[5*j:5*j+5], s.ce.Label[j], ref.Boxes[4*j:4*j+4], ref.Labels[j])
		}
		if l := ref.Labels[j]; l > 0 {
			if s.box.Base[pos] != int32(j*4*cfg.NumClasses+4*l) || s.box.Target[pos][2] != ref.Targets[4*j+2] {
				t.Errorf("row %d: box target at %d %v", j, s.box.Base[pos], s.box.Target[pos])
			}
			pos++
		}
	}
	if pos != len(s.box.Base) || pos == 0 {
		t.Errorf("%d box targets for %d positives", len(s.box.Base), pos)
	}
}
