package model

import (
	"math"
	"testing"
)

// A planned detector (values in a shared arena, poisoned with NaN before
// every run) computes bit-identical losses, gradients and detections to an
// unplanned one, over alternating shapes and modes, and its arena holds
// the largest program's peak, not the sum over programs.
func TestArenaMatchesUnplanned(t *testing.T) {
	t.Run("FrozenBN", func(t *testing.T) { testArenaMatchesUnplanned(t, tinyConfig()) })
	bn := tinyConfig()
	bn.Backbone.Norm = "BN"
	t.Run("BN", func(t *testing.T) { testArenaMatchesUnplanned(t, bn) })
}

func testArenaMatchesUnplanned(t *testing.T, cfg Config) {
	planned, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	planned.Arena.Poison = true
	plain, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain.Arena = nil
	planned.Init(3)
	plain.Init(3)
	shapes := [][3]int{{2, 64, 96}, {1, 96, 64}, {2, 64, 96}, {2, 96, 128}}
	peak := 0
	for step, s := range shapes {
		in := tinyInput(s[0], s[1], s[2])
		lp, pp, err := planned.TrainStep(in)
		if err != nil {
			t.Fatal(err)
		}
		lu, pu, err := plain.TrainStep(in)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range lu {
			if lp[k] != v || math.IsNaN(v) {
				t.Errorf("step %d %s: planned %v, unplanned %v", step, k, lp[k], v)
			}
		}
		for i := range pu.Params {
			gp, gu := pp.Gradient(i), pu.Gradient(i)
			for j := range gu {
				if gp[j] != gu[j] {
					t.Fatalf("step %d: gradient of %s[%d]: planned %v, unplanned %v", step, pu.Params[i].Name, j, gp[j], gu[j])
				}
			}
		}
		st, ok := pp.Machine.Planned()
		if !ok {
			t.Fatal("training program not planned")
		}
		if st.PeakFloats > peak {
			peak = st.PeakFloats
		}
		if int64(st.PeakFloats) >= st.SumFloats/2 {
			t.Errorf("step %d: plan peak %d floats, unshared %d: sharing saves less than half", step, st.PeakFloats, st.SumFloats)
		}
		dp, qp, err := planned.Detect(in)
		if err != nil {
			t.Fatal(err)
		}
		du, _, err := plain.Detect(in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range du {
			if len(dp[i].Scores) != len(du[i].Scores) {
				t.Fatalf("step %d image %d: %d detections planned, %d unplanned", step, i, len(dp[i].Scores), len(du[i].Scores))
			}
			for j := range du[i].Scores {
				if dp[i].Scores[j] != du[i].Scores[j] || dp[i].Labels[j] != du[i].Labels[j] {
					t.Fatalf("step %d image %d det %d differs", step, i, j)
				}
			}
			for j := range du[i].Boxes {
				if dp[i].Boxes[j] != du[i].Boxes[j] {
					t.Fatalf("step %d image %d box value %d differs", step, i, j)
				}
			}
		}
		if st, _ := qp.Machine.Planned(); st.PeakFloats > peak {
			peak = st.PeakFloats
		}
	}
	if planned.Arena.Size() != peak {
		t.Errorf("arena %d floats, largest plan %d", planned.Arena.Size(), peak)
	}
}

// The least recently used program is evicted, and its plan leaves the
// arena.
func TestProgramCacheLRU(t *testing.T) {
	d, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	d.Init(1)
	d.MaxPrograms = 2
	a, b, c := tinyInput(1, 64, 64), tinyInput(1, 64, 96), tinyInput(1, 96, 64)
	for _, in := range []*Input{a, b, a, c} { // b is least recently used when c comes
		if _, _, err := d.Detect(in); err != nil {
			t.Fatal(err)
		}
	}
	if d.Programs() != 2 {
		t.Fatalf("%d programs, want 2", d.Programs())
	}
	if _, ok := d.programs[progKey{false, 1, 64, 64}]; !ok {
		t.Error("the recently used 64x64 program was evicted")
	}
	if _, ok := d.programs[progKey{false, 1, 64, 96}]; ok {
		t.Error("the least recently used 64x96 program is still cached")
	}
}
