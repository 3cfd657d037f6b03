package infer

import (
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/data/synth"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/model"
)

// tinyConfig is a small detector for the five synthetic classes.
func tinyConfig() *config.File {
	f := config.Default()
	c := &f.Model
	c.Backbone.Depth = 18
	c.Backbone.WidthMult = 0.125
	c.FPNChannels = 16
	c.RoI.RepresentationSize = 32
	c.RoI.NumClasses = 6
	c.RPN.PreNMSTopNTest, c.RPN.PostNMSTopNTest = 100, 50
	f.Input.MinSize = []int{96}
	f.Input.MinSizeTest = 96
	f.Input.MaxSize = 128
	f.Data.Workers = 2
	return &f
}

func tinyModel(t *testing.T, cfg *config.File) *model.FasterRCNN {
	t.Helper()
	det, err := model.New(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	det.Init(7)
	return det
}

// writeImage writes a w x h gradient image with a bright rectangle.
func writeImage(t *testing.T, path string, w, h int) {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 90, 255}
			if x > w/4 && x < w/2 && y > h/3 && y < 2*h/3 {
				c = color.RGBA{250, 240, 20, 255}
			}
			m.Set(x, y, c)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if filepath.Ext(path) == ".png" {
		err = png.Encode(f, m)
	} else {
		err = jpeg.Encode(f, m, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatal(err)
	}
}

const cocoJSON = `{"images":[{"id":4,"file_name":"a.jpg","width":10,"height":10}],
"annotations":[],
"categories":[{"id":10,"name":"ten"},{"id":3,"name":"three"},{"id":7,"name":"seven"}]}`

func TestLabels(t *testing.T) {
	ds, err := data.ParseCOCO([]byte(cocoJSON), "x.json", "", data.COCOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := LabelsFromDataset(ds)
	want := []struct {
		label int
		id    int64
		name  string
	}{{1, 3, "three"}, {2, 7, "seven"}, {3, 10, "ten"}}
	for _, w := range want {
		if got := l.CategoryID(w.label); got != w.id {
			t.Errorf("CategoryID(%d) = %d, want %d", w.label, got, w.id)
		}
		if got := l.Name(w.label); got != w.name {
			t.Errorf("Name(%d) = %q, want %q", w.label, got, w.name)
		}
		if got, ok := l.Label(w.id); !ok || got != w.label {
			t.Errorf("Label(%d) = %d %v, want %d", w.id, got, ok, w.label)
		}
	}
	if l.CategoryID(4) != -1 || l.Name(4) != "class 4" || l.NumLabels() != 4 {
		t.Errorf("label 4: %d %q, %d labels", l.CategoryID(4), l.Name(4), l.NumLabels())
	}
	if _, ok := l.Label(5); ok {
		t.Error("category 5 has a label")
	}

	cfg := config.Default()
	cfg.Model.RoI.NumClasses = 4
	cfg.Data.Labels = "category_id"
	cfg.Data.ClassNames = []string{"person", "bicycle"}
	c := LabelsFromConfig(&cfg)
	if c.CategoryID(3) != 3 || c.Name(1) != "person" || c.Name(2) != "bicycle" || c.Name(3) != "class 3" || c.CategoryID(95) != 95 {
		t.Errorf("config labels: %d %q %q %q %d", c.CategoryID(3), c.Name(1), c.Name(2), c.Name(3), c.CategoryID(95))
	}
	if lab, ok := c.Label(2); !ok || lab != 2 {
		t.Errorf("Label(2) = %d %v", lab, ok)
	}
	cfg.Data.Labels, cfg.Data.ClassNames, cfg.Data.Synth.Dir = "contiguous", nil, "synth"
	cfg.Model.RoI.NumClasses = 6
	c = LabelsFromConfig(&cfg)
	if c.Name(1) != "circle" || c.Name(5) != "cross" || c.CategoryID(5) != 5 || c.CategoryID(6) != -1 {
		t.Errorf("synth labels %q %q %d", c.Name(1), c.Name(5), c.CategoryID(5))
	}
}

// TestRunGeometry checks that Run's boxes are Detect's boxes on the same
// batches divided by the per-axis resize factors (computed here from the
// sizes, not with BatchItem.ToOriginal), clipped to the original image.
func TestRunGeometry(t *testing.T) {
	cfg := tinyConfig()
	det := tinyModel(t, cfg)
	dir := t.TempDir()
	sizes := [][2]int{{120, 80}, {100, 150}, {70, 70}} // w, h
	var refs []ImageRef
	for i, s := range sizes {
		p := filepath.Join(dir, []string{"a.png", "b.jpg", "c.png"}[i])
		writeImage(t, p, s[0], s[1])
		refs = append(refs, ImageRef{Path: p, ID: int64(10 + i)})
	}
	opts := Options{Transform: glue.Transform(cfg, false), BatchSize: 2, Workers: 2}
	res, bad := Run(det, refs, opts, nil)
	if len(bad) != 0 {
		t.Fatal(bad)
	}
	if len(res) != 3 {
		t.Fatalf("%d results", len(res))
	}
	// Reference: the same batches ({a, b}, {c}) by hand.
	var ref []*ImageResult
	for _, group := range [][]int{{0, 1}, {2}} {
		var samples []*data.Sample
		for _, i := range group {
			img, err := data.DecodeImage(refs[i].Path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := data.TransformSample(img, nil, nil, opts.Transform, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			samples = append(samples, s)
		}
		b, err := data.Collate(samples, 32)
		if err != nil {
			t.Fatal(err)
		}
		dets, _, err := det.Detect(glue.Input(b))
		if err != nil {
			t.Fatal(err)
		}
		for k, i := range group {
			ow, oh := float64(sizes[i][0]), float64(sizes[i][1])
			it := b.Items[k]
			sx, sy := float64(it.W)/ow, float64(it.H)/oh
			r := &ImageResult{}
			d := dets[k]
			for j := range d.Scores {
				bx := [4]float32{}
				for c := 0; c < 4; c++ {
					s, lim := sx, ow
					if c%2 == 1 {
						s, lim = sy, oh
					}
					bx[c] = float32(math.Min(math.Max(float64(d.Boxes[4*j+c])/s, 0), lim))
				}
				r.Boxes = append(r.Boxes, bx)
				r.Scores = append(r.Scores, d.Scores[j])
				r.Labels = append(r.Labels, d.Labels[j])
			}
			ref = append(ref, r)
		}
	}
	total := 0
	for i, r := range res {
		if r.ImageID != int64(10+i) || r.Path != refs[i].Path || r.FileName != filepath.Base(refs[i].Path) {
			t.Errorf("result %d: id %d path %s name %s", i, r.ImageID, r.Path, r.FileName)
		}
		if r.Width != sizes[i][0] || r.Height != sizes[i][1] {
			t.Errorf("result %d: size %dx%d, want %v", i, r.Width, r.Height, sizes[i])
		}
		if len(r.Boxes) != len(ref[i].Boxes) {
			t.Fatalf("image %d: %d boxes, reference %d", i, len(r.Boxes), len(ref[i].Boxes))
		}
		total += len(r.Boxes)
		for j, b := range r.Boxes {
			for c := 0; c < 4; c++ {
				if d := math.Abs(float64(b[c] - ref[i].Boxes[j][c])); d > 1e-3 {
					t.Fatalf("image %d box %d: %v, reference %v", i, j, b, ref[i].Boxes[j])
				}
			}
			if b[0] < 0 || b[1] < 0 || b[2] > float32(r.Width) || b[3] > float32(r.Height) || b[2] < b[0] || b[3] < b[1] {
				t.Errorf("image %d box %v outside %dx%d", i, b, r.Width, r.Height)
			}
			if r.Scores[j] != ref[i].Scores[j] || r.Labels[j] != ref[i].Labels[j] {
				t.Errorf("image %d det %d: score/label %v/%d, reference %v/%d", i, j, r.Scores[j], r.Labels[j], ref[i].Scores[j], ref[i].Labels[j])
			}
			if r.Labels[j] < 1 || r.Labels[j] >= cfg.Model.RoI.NumClasses {
				t.Errorf("label %d", r.Labels[j])
			}
		}
	}
	if total == 0 {
		t.Fatal("no detections at all: the geometry check checked nothing")
	}

	// A score threshold keeps exactly the detections at or above it.
	var scores []float32
	for _, r := range res {
		scores = append(scores, r.Scores...)
	}
	sort.Slice(scores, func(i, j int) bool { return scores[i] < scores[j] })
	th := scores[len(scores)/2]
	keep := len(scores) - sort.Search(len(scores), func(i int) bool { return scores[i] >= th })
	labels := LabelsFromConfig(cfg)
	opts.ScoreThresh, opts.Labels, opts.BatchSize = th, &labels, 2
	res2, _ := Run(det, refs, opts, nil)
	n := 0
	for _, r := range res2 {
		for j, s := range r.Scores {
			if s < th {
				t.Errorf("score %v below %v", s, th)
			}
			if r.CategoryIDs[j] != int64(r.Labels[j]) {
				t.Errorf("category id %d for label %d", r.CategoryIDs[j], r.Labels[j])
			}
		}
		n += len(r.Scores)
	}
	if n != keep {
		t.Errorf("threshold %v kept %d, want %d", th, n, keep)
	}
}

func TestRunBadImages(t *testing.T) {
	cfg := tinyConfig()
	det := tinyModel(t, cfg)
	dir := t.TempDir()
	good1, good2 := filepath.Join(dir, "1.png"), filepath.Join(dir, "4.jpg")
	writeImage(t, good1, 64, 48)
	writeImage(t, good2, 50, 90)
	corrupt := filepath.Join(dir, "2.jpg")
	if err := os.WriteFile(corrupt, []byte("\xff\xd8\xff\xe0 not really a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "3.png")
	wrongSize := filepath.Join(dir, "5.png")
	writeImage(t, wrongSize, 40, 40)
	refs := []ImageRef{{Path: good1, ID: 1}, {Path: corrupt, ID: 2}, {Path: missing, ID: 3}, {Path: good2, ID: 4},
		{Path: wrongSize, ID: 5, Width: 41, Height: 40}}
	var calls []int
	res, bad := Run(det, refs, Options{Transform: glue.Transform(cfg, false), BatchSize: 2}, func(done, total int) {
		if total != 5 {
			t.Errorf("total %d", total)
		}
		calls = append(calls, done)
	})
	if len(res) != 2 || res[0].ImageID != 1 || res[1].ImageID != 4 {
		t.Fatalf("results %+v", res)
	}
	if len(bad) != 3 || bad[0].Path != corrupt || bad[1].Path != missing || bad[2].Path != wrongSize {
		t.Fatalf("errors %v", bad)
	}
	for _, b := range bad {
		if b.Err == nil || b.Error() == "" {
			t.Errorf("error %+v", b)
		}
	}
	if len(calls) == 0 || calls[len(calls)-1] != 5 {
		t.Errorf("progress calls %v", calls)
	}
	if res, bad := Run(det, nil, Options{}, nil); len(res)+len(bad) != 0 {
		t.Error("empty input gave output")
	}
}

func TestWriteResultsJSON(t *testing.T) {
	ds, err := data.ParseCOCO([]byte(cocoJSON), "x.json", "", data.COCOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labels := LabelsFromDataset(ds)
	res := []ImageResult{
		{ImageID: 4, FileName: `a "quoted".jpg`, Boxes: [][4]float32{{1.5, 2, 5.25, 9}, {0, 0, 3, 3}}, Scores: []float32{0.9, 0.125}, Labels: []int{3, 1}},
		{ImageID: 5, FileName: "b.jpg"},
	}
	p := filepath.Join(t.TempDir(), "r.json")
	if err := WriteResultsJSON(p, res, labels); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		ImageID    int64      `json:"image_id"`
		FileName   string     `json:"file_name"`
		CategoryID int64      `json:"category_id"`
		BBox       [4]float64 `json:"bbox"`
		Score      float64    `json:"score"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if len(got) != 2 {
		t.Fatalf("%s", raw)
	}
	if got[0].ImageID != 4 || got[0].FileName != `a "quoted".jpg` || got[0].CategoryID != 10 || got[0].BBox != [4]float64{1.5, 2, 3.75, 7} || got[0].Score != 0.9 {
		t.Errorf("first %+v", got[0])
	}
	if got[1].CategoryID != 3 || got[1].BBox != [4]float64{0, 0, 3, 3} || got[1].Score != 0.125 {
		t.Errorf("second %+v", got[1])
	}
	// It is a valid COCO results file for the ground truth.
	gt, err := cocoeval.ParseGT([]byte(cocoJSON))
	if err != nil {
		t.Fatal(err)
	}
	dets, err := cocoeval.ParseResults(gt, raw)
	if err != nil || len(dets) != 2 {
		t.Fatalf("%v %v", dets, err)
	}
	c, err := ToCOCO(res, labels)
	if err != nil || len(c) != 2 || c[0] != (cocoeval.Detection{ImageID: 4, CategoryID: 10, BBox: [4]float64{1.5, 2, 3.75, 7}, Score: float64(float32(0.9))}) {
		t.Errorf("ToCOCO %v %v", c, err)
	}
	// A label without a category is an error, and the file is untouched.
	res[0].Labels[0] = 9
	if err := WriteResultsJSON(p, res, labels); err == nil {
		t.Error("label 9 accepted")
	}
	if raw2, _ := os.ReadFile(p); string(raw2) != string(raw) {
		t.Error("failed write changed the file")
	}
	if err := WriteResultsJSON(filepath.Join(t.TempDir(), "no", "dir.json"), nil, labels); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestLoadModel(t *testing.T) {
	cfg := tinyConfig()
	det := tinyModel(t, cfg)
	dir := t.TempDir()
	p := filepath.Join(dir, "model.safetensors")
	if err := model.SaveWeights(det.Reg, p, nil); err != nil {
		t.Fatal(err)
	}
	got, rep, err := LoadModel(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unexpected) != 0 {
		t.Errorf("unexpected keys %v", rep.Unexpected)
	}
	a, b := det.Reg.Params(), got.Reg.Params()
	if len(a) != len(b) {
		t.Fatalf("%d and %d params", len(a), len(b))
	}
	for i := range a {
		da, db := a[i].Data(), b[i].Data()
		for j := range da {
			if da[j] != db[j] {
				t.Fatalf("%s differs at %d", a[i].Name, j)
			}
		}
	}
	other := tinyConfig()
	other.Model.RoI.NumClasses = 3
	_, _, err = LoadModel(other, p)
	cc, ok := err.(*ClassCountError)
	if !ok || cc.InFile != 6 || cc.InConfig != 3 {
		t.Fatalf("class count mismatch: %v", err)
	}
	if _, _, err := LoadModel(cfg, filepath.Join(dir, "missing.safetensors")); err == nil {
		t.Error("missing file loaded")
	}
	wide := tinyConfig()
	wide.Model.FPNChannels = 32
	if _, _, err := LoadModel(wide, p); err == nil {
		t.Error("weights of another architecture loaded")
	}
}

func TestEvaluateDataset(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "synth")
	if err := synth.Generate(dir, synth.Options{Val: 3, Seed: 3, Size: 96, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig()
	det := tinyModel(t, cfg)
	ann, imgs := synth.ValAnnotations(dir), synth.ValImages(dir)
	res, dets, err := EvaluateDataset(det, cfg, ann, imgs, 2)
	if err != nil {
		t.Fatal(err)
	}
	gt, err := cocoeval.LoadGT(ann)
	if err != nil {
		t.Fatal(err)
	}
	ids := append([]int64{}, res.Params.ImgIDs...)
	var all []int64
	for _, im := range gt.Images {
		all = append(all, im.ID)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(ids) != 2 || ids[0] != all[0] || ids[1] != all[1] {
		t.Errorf("evaluated images %v of %v", ids, all)
	}
	if len(dets) == 0 {
		t.Fatal("no detections")
	}
	for _, d := range dets {
		if d.ImageID != ids[0] && d.ImageID != ids[1] {
			t.Errorf("detection on image %d", d.ImageID)
		}
		if d.CategoryID < 1 || d.CategoryID > 5 || d.BBox[2] < 0 || d.BBox[3] < 0 || d.BBox[0]+d.BBox[2] > 96.001 || d.BBox[1]+d.BBox[3] > 96.001 {
			t.Errorf("detection %+v", d)
		}
	}
	for i, v := range res.Stats {
		if !(v == -1 || (v >= 0 && v <= 1)) {
			t.Errorf("%s = %v", cocoeval.StatNames[i], v)
		}
	}
	// The same numbers as evaluating the returned detections directly.
	p := cocoeval.DefaultParams()
	p.ImgIDs = ids
	again, err := cocoeval.Evaluate(gt, dets, p)
	if err != nil {
		t.Fatal(err)
	}
	if again.Stats != res.Stats {
		t.Errorf("stats %v, direct %v", res.Stats, again.Stats)
	}
	if len(res.PerClass) != 5 || res.PerClass[0].Name != "circle" {
		t.Errorf("per class %+v", res.PerClass)
	}

	// A model with the wrong class count is refused with a clear error.
	wrong := tinyConfig()
	wrong.Model.RoI.NumClasses = 4
	if _, _, err := EvaluateDataset(tinyModel(t, wrong), wrong, ann, imgs, 1); err == nil {
		t.Error("3-class model evaluated on a 5-class set")
	}
	// A missing image is left out and named in the warnings.
	if err := os.Remove(filepath.Join(imgs, "000001.jpg")); err != nil {
		t.Fatal(err)
	}
	res, _, err = EvaluateDataset(det, cfg, ann, imgs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Params.ImgIDs) != 2 || len(res.Warnings) == 0 {
		t.Errorf("ids %v warnings %v", res.Params.ImgIDs, res.Warnings)
	}
}
