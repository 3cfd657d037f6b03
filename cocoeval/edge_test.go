package cocoeval

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tiny builds an in-memory GT: images 1..nImg, categories 1..nCat.
func tiny(t *testing.T, nImg, nCat int, anns []Annotation) *Dataset {
	t.Helper()
	var imgs []Image
	for i := 1; i <= nImg; i++ {
		imgs = append(imgs, Image{ID: int64(i), Width: 640, Height: 480})
	}
	var cats []Category
	for i := 1; i <= nCat; i++ {
		cats = append(cats, Category{ID: int64(i), Name: "c" + string(rune('0'+i))})
	}
	gt, err := NewDataset(imgs, anns, cats)
	if err != nil {
		t.Fatal(err)
	}
	return gt
}

func box(id, img, cat int64, x, y, w, h float64) Annotation {
	return Annotation{ID: id, ImageID: img, CategoryID: cat, BBox: [4]float64{x, y, w, h}, Area: w * h}
}

func det(img, cat int64, x, y, w, h, score float64) Detection {
	return Detection{ImageID: img, CategoryID: cat, BBox: [4]float64{x, y, w, h}, Score: score}
}

func eval(t *testing.T, gt *Dataset, dets []Detection) *Result {
	t.Helper()
	res, err := Evaluate(gt, dets, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func wantStats(t *testing.T, res *Result, want [12]float64) {
	t.Helper()
	for i := range want {
		if math.Abs(res.Stats[i]-want[i]) > 1e-12 {
			t.Errorf("%s = %.15g, want %.15g", StatNames[i], res.Stats[i], want[i])
		}
	}
}

func TestLinspaceMatchesNumpy(t *testing.T) {
	p := DefaultParams()
	// numpy 1.24: np.linspace(.5, .95, 10) prints 0.8999999999999999 at index 8
	if p.IouThrs[8] != 0.8999999999999999 || p.IouThrs[5] != 0.75 || p.IouThrs[9] != 0.95 || p.IouThrs[2] != 0.6 {
		t.Fatalf("IouThrs %v", p.IouThrs)
	}
	if len(p.RecThrs) != 101 || p.RecThrs[3] != 0.03 || p.RecThrs[100] != 1 {
		t.Fatalf("RecThrs %v", p.RecThrs)
	}
}

func TestPairwiseSumMatchesNumpy(t *testing.T) {
	// repr(np.sum(np.arange(1, n+1) / 7.0)) with numpy 1.24; a plain
	// left-to-right sum differs in the last digits for the larger n
	cases := map[int]float64{5: 2.142857142857143, 100: 721.4285714285714, 10000: 7143571.428571429, 20000: 28572857.14285715}
	for n, want := range cases {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(i+1) / 7.0
		}
		if got := npSum(v); got != want {
			t.Errorf("n=%d: sum %.17g, numpy %.17g", n, got, want)
		}
	}
}

// TestHandComputed: 2 GT, 3 detections (TP, FP, TP) with one IoU exactly 0.7,
// a threshold value: matched at t <= 0.7, missed above. Expected values
// worked out by hand from pycocotools' rules.
func TestHandComputed(t *testing.T) {
	gt := tiny(t, 1, 1, []Annotation{box(1, 1, 1, 0, 0, 10, 10), box(2, 1, 1, 100, 100, 10, 10)})
	dets := []Detection{
		det(1, 1, 0, 0, 10, 7, 0.9),     // IoU 70/100 = 0.7 with GT 1
		det(1, 1, 300, 300, 5, 5, 0.8),  // false positive
		det(1, 1, 100, 100, 10, 10, .7), // IoU 1 with GT 2
	}
	res := eval(t, gt, dets)
	// t <= .7 (5 thresholds): TP FP TP: rc .5 .5 1, precision made monotone
	// 1 2/3 2/3: recall points 0..0.5 (51) -> 1, 0.51..1 (50) -> 2/3.
	apLow := (51 + 50*2.0/3) / 101
	// t > .7: FP FP TP: rc 0 0 .5, precision 1/3 for 51 points, 0 beyond.
	apHigh := 51.0 / 3 / 101
	ap := (5*apLow + 5*apHigh) / 10
	ar := (5*1 + 5*0.5) / 10.0
	ar1 := (5 * 0.5) / 10.0 // only the first detection
	wantStats(t, res, [12]float64{ap, apLow, apHigh, ap, -1, -1, ar1, ar, ar, ar, -1, -1})
	if res.PerClass[0].AP != res.Stats[0] || res.PerClass[0].NumGT != 2 {
		t.Errorf("per class %+v", res.PerClass[0])
	}
}

func TestEmptyResults(t *testing.T) {
	// category 1: one small GT; category 2: no GT at all
	gt := tiny(t, 2, 2, []Annotation{box(1, 1, 1, 0, 0, 10, 10)})
	res := eval(t, gt, nil)
	wantStats(t, res, [12]float64{0, 0, 0, 0, -1, -1, 0, 0, 0, 0, -1, -1})
	if res.PerClass[0].AP != 0 || res.PerClass[1].AP != -1 || res.PerClass[1].AP50 != -1 {
		t.Errorf("per class %+v", res.PerClass)
	}
	dets, err := ParseResults(gt, []byte(" [ ] "))
	if err != nil || len(dets) != 0 {
		t.Fatalf("empty results: %v %v", dets, err)
	}
	// no GT at all: every number is -1
	res = eval(t, tiny(t, 1, 1, nil), []Detection{det(1, 1, 0, 0, 5, 5, .5)})
	wantStats(t, res, [12]float64{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1})
	if !strings.Contains(res.Summary(), "maxDets=100 ] = -1.000") {
		t.Errorf("summary:\n%s", res.Summary())
	}
}

func TestCategoryWithoutGT(t *testing.T) {
	gt := tiny(t, 1, 2, []Annotation{box(1, 1, 1, 0, 0, 50, 50)})
	base := []Detection{det(1, 1, 0, 0, 50, 50, .9)}
	res := eval(t, gt, base)
	// confident detections of category 2 (no GT) change nothing
	res2 := eval(t, gt, append(base, det(1, 2, 0, 0, 50, 50, .99), det(1, 2, 5, 5, 50, 50, .98)))
	if res.Stats != res2.Stats || math.Abs(res.Stats[0]-1) > 1e-12 {
		t.Errorf("stats %v vs %v", res.Stats, res2.Stats)
	}
	if res2.PerClass[1].AP != -1 || res2.PerClass[1].NumGT != 0 || res2.PerClass[0].AP != res2.Stats[0] {
		t.Errorf("per class %+v", res2.PerClass)
	}
	if !strings.Contains(res2.PerClassTable(), "n/a") {
		t.Errorf("table:\n%s", res2.PerClassTable())
	}
	// a category not in the GT at all is ignored, with a warning
	res3 := eval(t, gt, append(base, det(1, 77, 0, 0, 50, 50, .99)))
	if res3.Stats != res.Stats || len(res3.Warnings) != 1 {
		t.Errorf("unknown category: %v %v", res3.Stats, res3.Warnings)
	}
}

func TestCrowd(t *testing.T) {
	crowd := box(1, 1, 1, 0, 0, 200, 200)
	crowd.IsCrowd = true
	gt := tiny(t, 2, 1, []Annotation{crowd, box(2, 2, 1, 10, 10, 40, 40)})
	dets := []Detection{
		det(1, 1, 10, 10, 20, 20, .95),    // inside the crowd box: IoU = inter / det area = 1
		det(1, 1, 150, 150, 100, 100, .9), // a quarter inside: IoU 2500/10000 = .25, unmatched
		det(1, 1, 50, 50, 30, 30, .85),    // inside too: crowd GT matches many
		det(2, 1, 10, 10, 40, 40, .8),     // the regular GT
	}
	res := eval(t, gt, dets)
	// the two detections inside the crowd are ignored; the half-outside one
	// (area 10000: large) is a false positive with a higher score than the TP.
	// all: FP then TP -> rc 0 1, precision .5 .5 -> AP .5 at every threshold.
	if math.Abs(res.Stats[0]-0.5) > 1e-12 || res.Stats[8] != 1 {
		t.Errorf("AP %v AR100 %v", res.Stats[0], res.Stats[8])
	}
	// medium (GT 1600): the large FP is ignored there -> AP 1
	if math.Abs(res.Stats[4]-1) > 1e-12 {
		t.Errorf("APm %v", res.Stats[4])
	}
	// crowd-only category: -1 everywhere
	gt2 := tiny(t, 1, 1, []Annotation{crowd})
	res2 := eval(t, gt2, dets[:1])
	if res2.Stats[0] != -1 || res2.PerClass[0].AP != -1 {
		t.Errorf("crowd only: %v", res2.Stats)
	}
}

// TestMatchRegularBeforeIgnored: a detection with a regular match stops at
// the first ignored GT even if that one overlaps more.
func TestMatchRegularBeforeIgnored(t *testing.T) {
	crowd := box(2, 1, 1, 0, 0, 10, 10)
	crowd.IsCrowd = true
	// regular GT [0,0,10,6]: IoU 60/100 = .6 with the detection [0,0,10,10]
	gt := tiny(t, 1, 1, []Annotation{box(1, 1, 1, 0, 0, 10, 6), crowd})
	res := eval(t, gt, []Detection{det(1, 1, 0, 0, 10, 10, .9)})
	// IoU with the regular GT: 60/100 = .6 -> TP at t = .5, .55, .6; above,
	// it matches the crowd (IoU 1) and is ignored: no detection, AP 0 there.
	wantStats(t, res, [12]float64{0.3, 1, 0, 0.3, -1, -1, 0.3, 0.3, 0.3, 0.3, -1, -1})
}

// TestTieLaterGTWinsAndIDZero: two identical GT boxes; on equal IoU the later
// one wins. The later one has id 0, which pycocotools (storing the matched
// id, 0 meaning none) counts as unmatched: a false positive.
func TestTieLaterGTWinsAndIDZero(t *testing.T) {
	gt := tiny(t, 1, 1, []Annotation{box(5, 1, 1, 0, 0, 10, 10), box(0, 1, 1, 0, 0, 10, 10)})
	res := eval(t, gt, []Detection{det(1, 1, 0, 0, 10, 10, .9)})
	if res.Stats[0] != 0 || res.Stats[8] != 0 || len(res.Warnings) != 1 {
		t.Errorf("stats %v warnings %v", res.Stats, res.Warnings)
	}
	// ids swapped: the detection now matches the GT with id 5
	gt2 := tiny(t, 1, 1, []Annotation{box(0, 1, 1, 0, 0, 10, 10), box(5, 1, 1, 0, 0, 10, 10)})
	res2 := eval(t, gt2, []Detection{det(1, 1, 0, 0, 10, 10, .9)})
	// one of two GT found with precision 1 (up to numpy.spacing(1)): 51 of
	// 101 recall points
	if math.Abs(res2.Stats[0]-51.0/101) > 1e-12 || res2.Stats[8] != 0.5 {
		t.Errorf("stats %v", res2.Stats)
	}
}

func TestZeroSizeBoxes(t *testing.T) {
	// a zero-width GT is kept (never matched); a zero-width detection is a
	// false positive, as in pycocotools.
	gt := tiny(t, 1, 1, []Annotation{box(1, 1, 1, 0, 0, 10, 10), box(2, 1, 1, 50, 50, 0, 10)})
	res := eval(t, gt, []Detection{det(1, 1, 0, 0, 10, 10, .5), det(1, 1, 50, 50, 0, 10, .9)})
	// FP then TP: rc 0 .5, precision .5 -> 51 points at .5, then 0
	ap := 51 * 0.5 / 101
	wantStats(t, res, [12]float64{ap, ap, ap, ap, -1, -1, 0, 0.5, 0.5, 0.5, -1, -1})
}

// TestImgIDsSubset: Params.ImgIDs gives the same numbers as evaluating a GT
// that only has those images.
func TestImgIDsSubset(t *testing.T) {
	gt, err := LoadGT(filepath.Join("testdata", "basic_gt.json"))
	if err != nil {
		t.Fatal(err)
	}
	dets, err := LoadResults(gt, filepath.Join("testdata", "basic_dets.json"))
	if err != nil {
		t.Fatal(err)
	}
	keep := map[int64]bool{}
	var ids []int64
	for i, im := range gt.Images {
		if i%3 != 0 {
			keep[im.ID] = true
			ids = append(ids, im.ID)
		}
	}
	p := DefaultParams()
	p.ImgIDs = ids
	sub, err := Evaluate(gt, dets, p)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []Image
	var anns []Annotation
	var dsub []Detection
	for _, im := range gt.Images {
		if keep[im.ID] {
			imgs = append(imgs, im)
		}
	}
	for _, a := range gt.Annotations {
		if keep[a.ImageID] {
			anns = append(anns, a)
		}
	}
	for _, d := range dets {
		if keep[d.ImageID] {
			dsub = append(dsub, d)
		}
	}
	gt2, err := NewDataset(imgs, anns, gt.Categories)
	if err != nil {
		t.Fatal(err)
	}
	full := eval(t, gt2, dsub)
	if sub.Stats != full.Stats {
		t.Errorf("subset %v\nfiltered %v", sub.Stats, full.Stats)
	}
	all := eval(t, gt, dets)
	if all.Stats == sub.Stats {
		t.Errorf("subset did not change anything")
	}
	p.ImgIDs = []int64{123456789}
	if _, err := Evaluate(gt, dets, p); err == nil || !strings.Contains(err.Error(), "123456789") {
		t.Errorf("unknown ImgIDs: %v", err)
	}
}

func TestSummaryLayout(t *testing.T) {
	gt := tiny(t, 1, 1, []Annotation{box(1, 1, 1, 0, 0, 10, 10)})
	res := eval(t, gt, []Detection{det(1, 1, 0, 0, 10, 10, .9)})
	want := ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000
 Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000
 Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 1.000
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 1.000
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000
`
	if got := res.Summary(); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

func TestBadInput(t *testing.T) {
	gtOK := `{"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1, "name": "a"}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0}]}`
	gt, err := ParseGT([]byte(gtOK))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, gt, want string
	}{
		{"syntax", "{\"images\": [\n {\"id\": 1,}\n]}", "GT JSON:2:11: invalid JSON"},
		{"type", "{\"images\": [\n {\"id\": \"x\"}\n]}", "GT JSON:2:9: invalid JSON: json: cannot unmarshal string"},
		{"truncated", `{"images": [`, "GT JSON:1:12: invalid JSON: unexpected end"},
		{"no images", `{"categories": []}`, `no "images"`},
		{"no categories", `{"images": []}`, `no "categories"`},
		{"dup image", `{"images": [{"id": 1}, {"id": 1}], "categories": []}`, "images[1]: duplicate image id 1"},
		{"dup cat", `{"images": [], "categories": [{"id": 3}, {"id": 3}]}`, "duplicate category id 3"},
		{"non-integer id", `{"images": [{"id": 1.5}], "categories": []}`, `"id" = 1.5 is not an integer`},
		{"unknown image", `{"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [{"id": 1, "image_id": 9, "category_id": 1, "bbox": [0,0,1,1]}]}`, "annotations[0] (id 1): image_id 9 is not in images"},
		{"unknown cat", `{"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "category_id": 4, "bbox": [0,0,1,1]}]}`, "category_id 4 is not in categories"},
		{"negative w", `{"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0,0,-1,1]}]}`, "annotations[0] (id 7): bbox [0 0 -1 1] has a negative width or height"},
		{"short bbox", `{"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0,0,1]}]}`, "bbox must have 4 numbers"},
		{"dup ann", `{"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0,0,1,1]}, {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0,0,1,1]}]}`, "duplicate annotation id"},
		{"missing id", `{"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0,0,1,1]}]}`, `annotations[0]: missing "id"`},
		{"bad iscrowd", `{"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "iscrowd": "yes"}]}`, "iscrowd must be a number or a boolean"},
	}
	for _, c := range cases {
		_, err := ParseGT([]byte(c.gt))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
	// missing area falls back to w*h; iscrowd true/false accepted
	d2, err := ParseGT([]byte(`{"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0,0,4,5], "iscrowd": true}]}`))
	if err != nil || d2.Annotations[0].Area != 20 || !d2.Annotations[0].IsCrowd {
		t.Errorf("fallbacks: %v %+v", err, d2)
	}

	rcases := []struct{ name, res, want string }{
		{"unknown image", `[{"image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "score": 1}, {"image_id": 99, "category_id": 1, "bbox": [0,0,1,1], "score": 1}, {"image_id": 42, "category_id": 1, "bbox": [0,0,1,1], "score": 1}]`, "image ids not in it: 42, 99"},
		{"not array", `{"image_id": 1}`, "must be a JSON array"},
		{"missing score", `[{"image_id": 1, "category_id": 1, "bbox": [0,0,1,1]}]`, `result [0]: missing "score"`},
		{"negative h", `[{"image_id": 1, "category_id": 1, "bbox": [0,0,1,-2], "score": 0.5}]`, "result [0] (image 1): bbox [0 0 1 -2] has a negative width or height"},
		{"type", "[\n{\"image_id\": 1, \"category_id\": 1, \"bbox\": [0,0,1,1], \"score\": true}]", "results JSON:2:63: invalid JSON: json: cannot unmarshal bool"},
		{"syntax", "[\n{\"image_id\": 1,,}]", "results JSON:2:16: invalid JSON: invalid character ','"},
	}
	for _, c := range rcases {
		_, err := ParseResults(gt, []byte(c.res))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("results %s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
	// in-memory detections get the same checks
	if _, err := Evaluate(gt, []Detection{det(1, 1, 0, 0, 1, 1, math.NaN())}, DefaultParams()); err == nil || !strings.Contains(err.Error(), "not finite") {
		t.Errorf("NaN score: %v", err)
	}
	if _, err := Evaluate(gt, []Detection{det(3, 1, 0, 0, 1, 1, 1)}, DefaultParams()); err == nil || !strings.Contains(err.Error(), "image ids not in it: 3") {
		t.Errorf("unknown image: %v", err)
	}
	if _, err := Evaluate(nil, nil, DefaultParams()); err == nil {
		t.Error("nil GT accepted")
	}
	p := DefaultParams()
	p.MaxDets = []int{10, 100}
	if _, err := Evaluate(gt, nil, p); err == nil {
		t.Error("2 maxDets accepted")
	}
	// file errors name the file
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte("[\n  {\"image_id\": 1 \"x\": 2}]"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadResults(gt, path); err == nil || !strings.Contains(err.Error(), path+":2:18: invalid JSON") {
		t.Errorf("file error: %v", err)
	}
	if _, err := LoadGT(path + ".missing"); err == nil {
		t.Error("missing file accepted")
	}
}

// TestTruncatedNeverPanics parses every prefix of a golden GT and results
// file: each must be an error (or, for the full text, success), never a panic.
func TestTruncatedNeverPanics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "sparse_ids_gt.json"))
	if err != nil {
		t.Fatal(err)
	}
	gt, err := ParseGT(data)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(data); n += 37 {
		if _, err := ParseGT(data[:n]); err == nil {
			t.Fatalf("prefix %d parsed", n)
		}
	}
	res, err := os.ReadFile(filepath.Join("testdata", "sparse_ids_dets.json"))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(res); n += 41 {
		if _, err := ParseResults(gt, res[:n]); err == nil {
			t.Fatalf("results prefix %d parsed", n)
		}
	}
}
