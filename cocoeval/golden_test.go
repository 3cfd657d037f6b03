package cocoeval

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

type goldenCase struct {
	GT      string    `json:"gt"`
	Dets    string    `json:"dets"`
	Stats   []float64 `json:"stats"`
	NImages int       `json:"n_images"`
	NGT     int       `json:"n_gt"`
	NDets   int       `json:"n_dets"`
}

func loadGolden(t *testing.T) map[string]goldenCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		StatNames []string              `json:"stat_names"`
		Cases     map[string]goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(exp.StatNames, StatNames[:]) {
		t.Fatalf("stat names %v, want %v", exp.StatNames, StatNames)
	}
	if len(exp.Cases) < 5 {
		t.Fatalf("only %d golden cases", len(exp.Cases))
	}
	return exp.Cases
}

// TestGolden reproduces pycocotools' 12 numbers on every golden case, with
// 1, 2 and 7 workers.
func TestGolden(t *testing.T) {
	for name, c := range loadGolden(t) {
		t.Run(name, func(t *testing.T) {
			gt, err := LoadGT(filepath.Join("testdata", c.GT))
			if err != nil {
				t.Fatal(err)
			}
			dets, err := LoadResults(gt, filepath.Join("testdata", c.Dets))
			if err != nil {
				t.Fatal(err)
			}
			if len(gt.Images) != c.NImages || len(gt.Annotations) != c.NGT || len(dets) != c.NDets {
				t.Fatalf("sizes %d/%d/%d, want %d/%d/%d", len(gt.Images), len(gt.Annotations), len(dets), c.NImages, c.NGT, c.NDets)
			}
			var first *Result
			for _, workers := range []int{1, 2, 7} {
				p := DefaultParams()
				p.Workers = workers
				res, err := Evaluate(gt, dets, p)
				if err != nil {
					t.Fatal(err)
				}
				for i, want := range c.Stats {
					if got := res.Stats[i]; math.Abs(got-want) > 1e-9 {
						t.Errorf("workers %d: %s = %.17g, pycocotools %.17g (diff %.3g)", workers, StatNames[i], got, want, got-want)
					}
				}
				if first == nil {
					first = res
					continue
				}
				if res.Stats != first.Stats || !slices.Equal(res.Precision, first.Precision) || !slices.Equal(res.Recall, first.Recall) {
					t.Errorf("workers %d: result differs from workers 1", workers)
				}
			}
			// per-class AP averages back to the AP stat (same entries, other order)
			sum, n := 0.0, 0
			for _, c := range first.PerClass {
				if c.AP > -1 {
					sum += c.AP
					n++
				}
			}
			if n == 0 || math.Abs(sum/float64(n)-first.Stats[0]) > 1e-12 {
				t.Errorf("mean per-class AP %v over %d classes, AP %v", sum/float64(n), n, first.Stats[0])
			}
		})
	}
}
