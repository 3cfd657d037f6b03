package boxes

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// golden mirrors testdata/golden.json, written by scripts/boxes_golden.py
// with torchvision 0.14.
type golden struct {
	IoU struct {
		A, B, IoU []float32
		AreaB     []float32 `json:"area_b"`
	} `json:"iou"`
	Coder []struct {
		Weights              [4]float32
		Proposals, Reference []float32
		Encoded              []float32
		Deltas1, Decoded1    []float32
		Deltas3, Decoded3    []float32
	} `json:"coder"`
	Clip []struct {
		H, W           float32
		Boxes, Clipped []float32
	} `json:"clip"`
	RemoveSmall []struct {
		Boxes   []float32
		MinSize float32 `json:"min_size"`
		Keep    []int
	} `json:"remove_small"`
	NMS []struct {
		Boxes, Scores []float32
		Groups        []int
		Runs          []struct {
			Thr            float64
			NMS            []int `json:"nms"`
			BatchedVanilla []int `json:"batched_vanilla"`
			BatchedTrick   []int `json:"batched_trick"`
			Batched        []int
		}
	} `json:"nms"`
	Anchors []struct {
		Name      string
		Sizes     [][]float32
		Ratios    [][]float32
		Image     [2]int
		Features  [][2]int
		Cell      [][]float32
		Count     int
		SHA256    string `json:"sha256"`
		Rows      []int
		RowValues [][]float32 `json:"row_values"`
	} `json:"anchors"`
	Matcher []struct {
		Name     string
		GT, Pred []float32
		Quality  []float32
		NumGT    int `json:"num_gt"`
		NumPred  int `json:"num_pred"`
		Runs     []struct {
			High, Low       float32
			AllowLowQuality bool `json:"allow_low_quality"`
			Matches         []int
		}
	} `json:"matcher"`
	Sampler struct {
		Labels []int
		Cases  []struct {
			Batch    int
			Fraction float64
			PosPerm  []int `json:"pos_perm"`
			NegPerm  []int `json:"neg_perm"`
			Pos, Neg []int
		}
	} `json:"sampler"`
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	path := filepath.Join("testdata", "golden.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v (regenerate with /usr/bin/python3 scripts/boxes_golden.py)", path, err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &g
}

// closeTo compares with an absolute tolerance tol, relative for large
// values (|want| > 1).
func closeTo(got, want []float32, tol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("length %d, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) || math.IsNaN(g) {
			if math.IsNaN(w) != math.IsNaN(g) {
				return fmt.Errorf("index %d: got %v, want %v", i, g, w)
			}
			continue
		}
		if math.Abs(g-w) > tol*math.Max(1, math.Abs(w)) {
			return fmt.Errorf("index %d: got %v, want %v", i, g, w)
		}
	}
	return nil
}

func TestGoldenIoUArea(t *testing.T) {
	g := loadGolden(t)
	iou, err := IoU(g.IoU.A, g.IoU.B)
	if err != nil {
		t.Fatal(err)
	}
	if err := closeTo(iou, g.IoU.IoU, 1e-5); err != nil {
		t.Fatalf("IoU vs torchvision box_iou: %v", err)
	}
	// Same float32 operation order as torchvision: expect bit equality.
	for i := range iou {
		if math.Float32bits(iou[i]) != math.Float32bits(g.IoU.IoU[i]) && !(iou[i] != iou[i] && g.IoU.IoU[i] != g.IoU.IoU[i]) {
			t.Errorf("IoU[%d] = %v, torchvision %v: not bit-identical", i, iou[i], g.IoU.IoU[i])
		}
	}
	area, err := Area(g.IoU.B)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(area, g.IoU.AreaB) {
		t.Fatalf("Area = %v, torchvision box_area %v", area, g.IoU.AreaB)
	}
}

func TestGoldenCoder(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Coder {
		bc := NewBoxCoder(c.Weights)
		enc, err := bc.Encode(c.Reference, c.Proposals)
		if err != nil {
			t.Fatal(err)
		}
		if err := closeTo(enc, c.Encoded, 1e-5); err != nil {
			t.Errorf("weights %v: Encode vs torchvision encode_single: %v", c.Weights, err)
		}
		dec, err := bc.Decode(c.Deltas1, c.Proposals)
		if err != nil {
			t.Fatal(err)
		}
		if err := closeTo(dec, c.Decoded1, 1e-5); err != nil {
			t.Errorf("weights %v: Decode (4 per box, clamped deltas) vs torchvision decode_single: %v", c.Weights, err)
		}
		dec, err = bc.Decode(c.Deltas3, c.Proposals)
		if err != nil {
			t.Fatal(err)
		}
		if err := closeTo(dec, c.Decoded3, 1e-5); err != nil {
			t.Errorf("weights %v: Decode (12 per box) vs torchvision decode_single: %v", c.Weights, err)
		}
	}
}

func TestGoldenClipRemoveSmall(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Clip {
		b := slices.Clone(c.Boxes)
		if err := ClipToImage(b, c.H, c.W); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(b, c.Clipped) {
			t.Errorf("ClipToImage(%v x %v) differs from torchvision clip_boxes_to_image", c.H, c.W)
		}
	}
	for _, c := range g.RemoveSmall {
		keep, err := RemoveSmall(c.Boxes, c.MinSize)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keep, c.Keep) {
			t.Errorf("RemoveSmall(min %v) = %v, torchvision %v", c.MinSize, keep, c.Keep)
		}
	}
}

func TestGoldenNMS(t *testing.T) {
	g := loadGolden(t)
	for ci, c := range g.NMS {
		for _, r := range c.Runs {
			name := fmt.Sprintf("case %d (%d boxes) thr %v", ci, len(c.Scores), r.Thr)
			keep, err := NMS(c.Boxes, c.Scores, r.Thr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keep, r.NMS) {
				t.Errorf("%s: NMS keeps %d, torchvision %d", name, len(keep), len(r.NMS))
			}
			var w nmsWork
			idx := make([]int, len(c.Scores))
			for i := range idx {
				idx[i] = i
			}
			if all := w.runAllPairs(c.Boxes, c.Scores, idx, r.Thr); !slices.Equal(all, r.NMS) {
				t.Errorf("%s: all-pairs NMS differs from torchvision", name)
			}
			bk, err := BatchedNMS(c.Boxes, c.Scores, c.Groups, r.Thr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bk, r.BatchedVanilla) {
				t.Errorf("%s: BatchedNMS keeps %d, torchvision _batched_nms_vanilla %d", name, len(bk), len(r.BatchedVanilla))
			}
			ok, err := BatchedNMSOffset(c.Boxes, c.Scores, c.Groups, r.Thr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ok, r.BatchedTrick) {
				t.Errorf("%s: BatchedNMSOffset differs from torchvision _batched_nms_coordinate_trick", name)
			}
			tk, err := BatchedNMSTorchvision(c.Boxes, c.Scores, c.Groups, r.Thr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tk, r.Batched) {
				t.Errorf("%s: BatchedNMSTorchvision differs from torchvision batched_nms", name)
			}
		}
	}
}

// runAllPairs forces the kernel's all-pairs loop (tests only).
func (w *nmsWork) runAllPairs(b, scores []float32, idx []int, thr float64) []int {
	saved := forceAllPairs
	forceAllPairs = true
	defer func() { forceAllPairs = saved }()
	return w.run(b, scores, idx, thr)
}

// nms10k is testdata/nms10k.bin.
type nms10k struct {
	boxes, scores []float32
	thrs          []float64
	keeps         [][]int
}

func loadNMS10k(tb testing.TB) *nms10k {
	tb.Helper()
	path := filepath.Join("testdata", "nms10k.bin")
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%s: %v (regenerate with /usr/bin/python3 scripts/boxes_golden.py)", path, err)
	}
	off := 0
	need := func(k int) []byte {
		if off+k > len(raw) {
			tb.Fatalf("%s: truncated at byte %d (need %d more)", path, off, k)
		}
		s := raw[off : off+k]
		off += k
		return s
	}
	i32 := func() int { return int(int32(binary.LittleEndian.Uint32(need(4)))) }
	f32s := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(need(4)))
		}
		return out
	}
	n, nt := i32(), i32()
	d := &nms10k{}
	for i := 0; i < nt; i++ {
		d.thrs = append(d.thrs, math.Float64frombits(binary.LittleEndian.Uint64(need(8))))
	}
	d.boxes = f32s(4 * n)
	d.scores = f32s(n)
	for i := 0; i < nt; i++ {
		k := i32()
		keep := make([]int, k)
		for j := range keep {
			keep[j] = i32()
		}
		d.keeps = append(d.keeps, keep)
	}
	if off != len(raw) {
		tb.Fatalf("%s: %d trailing bytes", path, len(raw)-off)
	}
	return d
}

func TestGoldenNMS10k(t *testing.T) {
	d := loadNMS10k(t)
	for i, thr := range d.thrs {
		keep, err := NMS(d.boxes, d.scores, thr)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keep, d.keeps[i]) {
			t.Errorf("thr %v: NMS keeps %d boxes, torchvision %d", thr, len(keep), len(d.keeps[i]))
		}
	}
}

func TestGoldenAnchors(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Anchors {
		name := fmt.Sprintf("%s %dx%d", c.Name, c.Image[0], c.Image[1])
		gen, err := NewAnchorGenerator(c.Sizes, c.Ratios)
		if err != nil {
			t.Fatal(err)
		}
		for l, want := range c.Cell {
			got, err := gen.CellAnchors(l)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s level %d: cell anchors %v, torchvision %v", name, l, got, want)
			}
		}
		a, err := gen.Generate(c.Image[0], c.Image[1], c.Features)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != 4*c.Count {
			t.Fatalf("%s: %d anchors, torchvision %d", name, len(a)/4, c.Count)
		}
		for k, r := range c.Rows {
			if !slices.Equal(a[4*r:4*r+4], c.RowValues[k]) {
				t.Errorf("%s: anchor %d = %v, torchvision %v", name, r, a[4*r:4*r+4], c.RowValues[k])
			}
		}
		raw := make([]byte, 4*len(a))
		for i, v := range a {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		sum := sha256.Sum256(raw)
		if hex.EncodeToString(sum[:]) != c.SHA256 {
			t.Errorf("%s: anchors differ from torchvision's (sha256 of the float32 bytes)", name)
		}
	}
}

func TestGoldenMatcher(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Matcher {
		// Go's IoU reproduces torchvision's quality matrix exactly.
		q, err := IoU(c.GT, c.Pred)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q, c.Quality) {
			t.Errorf("%s: IoU(gt, pred) differs from torchvision box_iou", c.Name)
		}
		for _, r := range c.Runs {
			m := Matcher{High: r.High, Low: r.Low, AllowLowQualityMatches: r.AllowLowQuality}
			got, err := m.Match(c.Quality, c.NumGT, c.NumPred)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, r.Matches) {
				t.Errorf("%s %+v: matches differ from torchvision Matcher", c.Name, m)
			}
		}
	}
}

func TestGoldenSamplerPermutations(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Sampler.Cases {
		s := BalancedSampler{BatchSizePerImage: c.Batch, PositiveFraction: c.Fraction}
		pos, neg, err := s.SampleWithPermutations(g.Sampler.Labels, c.PosPerm, c.NegPerm)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(pos, c.Pos) || !slices.Equal(neg, c.Neg) {
			t.Errorf("batch %d fraction %v: sampled (%d pos, %d neg) differ from torchvision (%d, %d)", c.Batch, c.Fraction, len(pos), len(neg), len(c.Pos), len(c.Neg))
		}
	}
}
