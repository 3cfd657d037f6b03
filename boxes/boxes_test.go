package boxes

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBadLengths(t *testing.T) {
	three := []float32{1, 2, 3}
	if _, err := Area(three); err == nil {
		t.Error("Area accepted a length-3 slice")
	}
	if _, err := IoU(three, nil); err == nil {
		t.Error("IoU accepted a length-3 slice")
	}
	if err := IoUInto(make([]float32, 3), make([]float32, 4), make([]float32, 8)); err == nil {
		t.Error("IoUInto accepted a wrong destination length")
	}
	if _, err := NMS(make([]float32, 8), make([]float32, 3), 0.5); err == nil {
		t.Error("NMS accepted 2 boxes with 3 scores")
	}
	if _, err := BatchedNMS(make([]float32, 8), make([]float32, 2), []int{0}, 0.5); err == nil {
		t.Error("BatchedNMS accepted 2 boxes with 1 group id")
	}
	c := NewBoxCoder(RoIWeights)
	if _, err := c.Encode(make([]float32, 8), make([]float32, 4)); err == nil {
		t.Error("Encode accepted 2 references with 1 proposal")
	}
	if _, err := c.Decode(make([]float32, 12), make([]float32, 8)); err == nil {
		t.Error("Decode accepted 12 deltas for 2 boxes")
	}
	if _, err := Select(make([]float32, 8), []int{2}); err == nil {
		t.Error("Select accepted an index out of range")
	}
	if _, err := (Matcher{High: 0.3, Low: 0.7}).Match(nil, 0, 0); err == nil {
		t.Error("Match accepted low > high")
	}
	if _, err := RPNMatcher().Match(make([]float32, 5), 2, 3); err == nil {
		t.Error("Match accepted a 5-value matrix for 2x3")
	}
	if _, err := NewAnchorGenerator([][]float32{{32}, {64}}, [][]float32{{1}, {1}, {1}}); err == nil {
		t.Error("NewAnchorGenerator accepted 2 size levels with 3 ratio levels")
	}
	if _, err := NewAnchorGenerator([][]float32{{32}}, [][]float32{{-1}}); err == nil {
		t.Error("NewAnchorGenerator accepted a negative ratio")
	}
	if _, err := DefaultAnchorGenerator().Generate(800, 800, [][2]int{{200, 200}}); err == nil {
		t.Error("Generate accepted 1 feature size for 5 levels")
	}
	if _, _, err := (BalancedSampler{BatchSizePerImage: 4, PositiveFraction: 0.5}).Sample([]int{1, 0}, nil); err == nil {
		t.Error("Sample accepted a nil rng")
	}
	if _, _, err := (BalancedSampler{BatchSizePerImage: 4, PositiveFraction: 0.5}).SampleWithPermutations([]int{1, 1, 0}, []int{0, 0}, []int{0}); err == nil {
		t.Error("SampleWithPermutations accepted a repeated permutation entry")
	}
}

func TestIoUHandValues(t *testing.T) {
	a := []float32{0, 0, 10, 10}
	b := []float32{5, 0, 15, 10, 10, 10, 20, 20, 0, 0, 10, 10, 2, 2, 4, 4}
	got, err := IoU(a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{50.0 / 150, 0, 1, 4.0 / 100}
	if err := closeTo(got, want, 1e-7); err != nil {
		t.Fatal(err)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, w := range [][4]float32{RPNWeights, RoIWeights} {
		c := NewBoxCoder(w)
		props := randBoxes(rng, 50, 500, 5, 100)
		ref := randBoxes(rng, 50, 500, 5, 100)
		d, err := c.Encode(ref, props)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.Decode(d, props)
		if err != nil {
			t.Fatal(err)
		}
		if err := closeTo(back, ref, 1e-4); err != nil {
			t.Errorf("weights %v: Decode(Encode(ref)) != ref: %v", w, err)
		}
	}
	// A huge dw is clamped to log(1000/16): width grows by 62.5 at most.
	c := NewBoxCoder(RPNWeights)
	out, err := c.Decode([]float32{0, 0, 1e6, 0}, []float32{0, 0, 16, 16})
	if err != nil {
		t.Fatal(err)
	}
	if w := out[2] - out[0]; math.Abs(float64(w)-1000) > 1e-2 {
		t.Errorf("clamped decoded width = %v, want 1000", w)
	}
}

func TestClipAndRemoveSmallHand(t *testing.T) {
	b := []float32{-5, -1, 700, 300, 10, 10, 10.5, 40}
	if err := ClipToImage(b, 200, 640); err != nil {
		t.Fatal(err)
	}
	if want := []float32{0, 0, 640, 200, 10, 10, 10.5, 40}; !slices.Equal(b, want) {
		t.Fatalf("clipped %v, want %v", b, want)
	}
	keep, err := RemoveSmall(b, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keep, []int{0, 1}) {
		t.Fatalf("RemoveSmall(0.5) = %v", keep)
	}
	keep, _ = RemoveSmall(b, 0.6)
	if !slices.Equal(keep, []int{0}) {
		t.Fatalf("RemoveSmall(0.6) = %v", keep)
	}
}

func randBoxes(rng *rand.Rand, n int, extent, minWH, maxWH float32) []float32 {
	b := make([]float32, 4*n)
	for i := 0; i < n; i++ {
		x, y := rng.Float32()*extent, rng.Float32()*extent
		w, h := minWH+rng.Float32()*(maxWH-minWH), minWH+rng.Float32()*(maxWH-minWH)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = x, y, x+w, y+h
	}
	return b
}

// TestNMSGridEqualsAllPairs checks the grid path against the kernel's
// all-pairs loop on many random sets, including boxes of very different
// sizes, degenerate and inverted boxes, duplicates and tied scores.
func TestNMSGridEqualsAllPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for trial := 0; trial < 60; trial++ {
		n := 65 + rng.IntN(600)
		b := randBoxes(rng, n, 50+rng.Float32()*1000, 0.5, 5+rng.Float32()*400)
		for k := 0; k < n/20; k++ {
			i, j := rng.IntN(n), rng.IntN(n)
			switch k % 4 {
			case 0: // duplicate
				copy(b[4*i:4*i+4], b[4*j:4*j+4])
			case 1: // zero width
				b[4*i+2] = b[4*i]
			case 2: // inverted
				b[4*i], b[4*i+2] = b[4*i+2], b[4*i]
			case 3: // huge
				b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = 0, 0, 2000, 2000
			}
		}
		scores := make([]float32, n)
		for i := range scores {
			scores[i] = float32(rng.IntN(n / 3)) // many ties
		}
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		// Boxes at IoU close to 0.5 / 0.7 with others: shifted or scaled
		// copies on the decision boundary.
		for k := 0; k < n/10; k++ {
			i, j := rng.IntN(n), rng.IntN(n)
			t := []float32{0.5, 0.7}[k%2] * (1 + (rng.Float32()-0.5)*1e-5)
			bx := b[4*j : 4*j+4]
			w, h := bx[2]-bx[0], bx[3]-bx[1]
			if k%8 == 7 { // nested, same y-extent: IoU t at the search bound
				t = []float32{0.3, 0.7}[rng.IntN(2)] * (1 + (rng.Float32()-0.5)*1e-5)
				b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = bx[0], bx[1], bx[0]+w/t, bx[3]
			} else if k%4 < 2 { // shift in x: IoU (w-d)/(w+d)
				d := w * (1 - t) / (1 + t)
				b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = bx[0]+d, bx[1], bx[2]+d, bx[3]
			} else { // scale about the centre: IoU 1/s^2
				s := float32(math.Sqrt(1 / float64(t)))
				cx, cy := (bx[0]+bx[2])/2, (bx[1]+bx[3])/2
				b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = cx-s*w/2, cy-s*h/2, cx+s*w/2, cy+s*h/2
			}
		}
		for _, thr := range []float64{0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.95, 1} {
			var w nmsWork
			want := w.runAllPairs(b, scores, idx, thr)
			got, err := NMS(b, scores, thr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("trial %d thr %v: grid NMS keeps %d, all-pairs %d", trial, thr, len(got), len(want))
			}
			for k := 1; k < len(got); k++ {
				a, c := got[k-1], got[k]
				if scores[a] < scores[c] || (scores[a] == scores[c] && a > c) {
					t.Fatalf("trial %d: kept indices not in score order (ties by index)", trial)
				}
			}
		}
	}
}

func TestNMSSpecialCases(t *testing.T) {
	b := []float32{0, 0, 10, 10, 1, 1, 10, 10, 50, 50, 60, 60}
	keep, err := NMS(b, []float32{0.9, 0.8, 0.7}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keep, []int{0, 2}) {
		t.Fatalf("NMS = %v, want [0 2]", keep)
	}
	// A negative threshold suppresses everything after the first box (IoU 0 > -1).
	keep, _ = NMS(b, []float32{0.9, 0.8, 0.7}, -1)
	if !slices.Equal(keep, []int{0}) {
		t.Fatalf("NMS(thr -1) = %v, want [0]", keep)
	}
	// NaN scores come first, as in torch's descending sort.
	keep, _ = NMS(b, []float32{0.9, float32(math.NaN()), 0.7}, 0.5)
	if !slices.Equal(keep, []int{1, 2}) {
		t.Fatalf("NMS with NaN score = %v, want [1 2]", keep)
	}
	keep, _ = NMS(nil, nil, 0.5)
	if len(keep) != 0 {
		t.Fatalf("NMS of nothing = %v", keep)
	}
	// Groups keep overlapping boxes of different classes.
	bk, err := BatchedNMS(b, []float32{0.9, 0.8, 0.7}, []int{3, 1, 3}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bk, []int{0, 1, 2}) {
		t.Fatalf("BatchedNMS = %v, want [0 1 2]", bk)
	}
}

func TestAnchorsDefaultHand(t *testing.T) {
	g := DefaultAnchorGenerator()
	c0, _ := g.CellAnchors(0)
	// torchvision: size 32, ratios 0.5, 1, 2.
	want := []float32{-23, -11, 23, 11, -16, -16, 16, 16, -11, -23, 11, 23}
	if !slices.Equal(c0, want) {
		t.Fatalf("cell anchors level 0 = %v, want %v", c0, want)
	}
	if !slices.Equal(g.NumAnchorsPerLocation(), []int{3, 3, 3, 3, 3}) {
		t.Fatalf("anchors per location = %v", g.NumAnchorsPerLocation())
	}
	lv, err := g.GenerateLevels(64, 96, [][2]int{{16, 24}, {8, 12}, {4, 6}, {2, 3}, {1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	// Level 0, row 1, column 2, anchor 1: shift (2*4, 1*4).
	k := (1*24+2)*3 + 1
	if got := lv[0][4*k : 4*k+4]; !slices.Equal(got, []float32{8 - 16, 4 - 16, 8 + 16, 4 + 16}) {
		t.Fatalf("anchor %d = %v", k, got)
	}
	// Level 4: stride 96/2 = 48 in x, 64/1 = 64 in y.
	if got := lv[4][12:16]; !slices.Equal(got, []float32{48 - 362, -181, 48 + 362, 181}) {
		t.Fatalf("level 4 anchor 3 = %v", got)
	}
}

func TestMatcherHand(t *testing.T) {
	// 2 GT x 4 predictions.
	q := []float32{
		0.9, 0.4, 0.1, 0.2,
		0.1, 0.5, 0.65, 0.2,
	}
	got, _ := Matcher{High: 0.7, Low: 0.3}.Match(q, 2, 4)
	if want := []int{0, BetweenThresholds, BetweenThresholds, BelowLowThreshold}; !slices.Equal(got, want) {
		t.Fatalf("no low-quality: %v, want %v", got, want)
	}
	got, _ = RPNMatcher().Match(q, 2, 4)
	if want := []int{0, BetweenThresholds, 1, BelowLowThreshold}; !slices.Equal(got, want) {
		t.Fatalf("low-quality: %v, want %v", got, want)
	}
	got, _ = RPNMatcher().Match(nil, 0, 3)
	if want := []int{-1, -1, -1}; !slices.Equal(got, want) {
		t.Fatalf("empty GT: %v, want %v", got, want)
	}
}

func TestSamplerCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	labels := make([]int, 5000)
	for i := range labels {
		switch {
		case i%50 == 0:
			labels[i] = 1 + i%3 // 100 positives
		case i%7 == 0:
			labels[i] = -1
		}
	}
	s := BalancedSampler{BatchSizePerImage: 256, PositiveFraction: 0.25}
	pos, neg, err := s.Sample(labels, rng)
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 64 || len(neg) != 192 {
		t.Fatalf("got %d pos %d neg, want 64 / 192 (positives capped)", len(pos), len(neg))
	}
	for _, p := range pos {
		if labels[p] < 1 {
			t.Fatalf("positive %d has label %d", p, labels[p])
		}
	}
	for _, p := range neg {
		if labels[p] != 0 {
			t.Fatalf("negative %d has label %d", p, labels[p])
		}
	}
	if !slices.IsSorted(pos) || !slices.IsSorted(neg) || len(slices.Compact(slices.Clone(pos))) != len(pos) || len(slices.Compact(slices.Clone(neg))) != len(neg) {
		t.Fatal("samples not sorted or repeated")
	}
	// Few positives: negatives fill the batch.
	s = BalancedSampler{BatchSizePerImage: 512, PositiveFraction: 0.5}
	pos, neg, _ = s.Sample(labels, rng)
	if len(pos) != 100 || len(neg) != 412 {
		t.Fatalf("got %d pos %d neg, want 100 / 412", len(pos), len(neg))
	}
	// Same seed, same draw; uniform over candidates on average.
	a1, _, _ := s.Sample(labels, rand.New(rand.NewPCG(9, 9)))
	a2, _, _ := s.Sample(labels, rand.New(rand.NewPCG(9, 9)))
	if !slices.Equal(a1, a2) {
		t.Fatal("same seed gave different samples")
	}
	hits := make([]int, 5000)
	s = BalancedSampler{BatchSizePerImage: 20, PositiveFraction: 0.5}
	for r := 0; r < 400; r++ {
		p, _, _ := s.Sample(labels, rng)
		for _, i := range p {
			hits[i]++
		}
	}
	// Each of 100 positives is picked with probability 10/100: 40 expected.
	for i := 0; i < 5000; i += 50 {
		if hits[i] < 15 || hits[i] > 70 {
			t.Fatalf("positive %d picked %d times in 400 draws, expected about 40", i, hits[i])
		}
	}
}
