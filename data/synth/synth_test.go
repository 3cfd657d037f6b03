package synth

import (
	"bytes"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/data"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestGenerateAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shapes")
	opts := Options{Train: 6, Val: 3, Seed: 7, Size: 128, CrowdProb: 0.5, Workers: 2}
	if err := Ensure(dir, opts); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []struct {
		ann, imgs, split string
		n                int
	}{{TrainAnnotations(dir), TrainImages(dir), "train", 6}, {ValAnnotations(dir), ValImages(dir), "val", 3}} {
		ds, err := data.LoadCOCO(sp.ann, sp.imgs, data.COCOOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds.Images) != sp.n || ds.NumClasses() != 5 || ds.CategoryName(4) != "ring" {
			t.Fatalf("%s: %d images, %d classes", sp.split, len(ds.Images), ds.NumClasses())
		}
		if ds.Stats.InvalidBoxes != 0 {
			t.Errorf("%s: %d invalid boxes", sp.split, ds.Stats.InvalidBoxes)
		}
		for i, rec := range ds.Images {
			sc, err := Render(opts, sp.split, i)
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.Annotations) != len(sc.Objects) || len(sc.Objects) == 0 {
				t.Fatalf("%s %d: %d annotations, scene %d objects", sp.split, i, len(rec.Annotations), len(sc.Objects))
			}
			img, err := data.DecodeImage(rec.Path)
			if err != nil {
				t.Fatal(err)
			}
			if img.W != 128 || img.H != 128 || rec.Width != 128 {
				t.Fatalf("image %dx%d", img.W, img.H)
			}
			for k, a := range rec.Annotations {
				o := sc.Objects[k]
				if a.IsCrowd != o.IsCrowd || a.Label != o.Class+1 {
					t.Errorf("ann %d: crowd %v label %d, scene %+v", k, a.IsCrowd, a.Label, o)
				}
				// Area = mask pixel count; the box is the tight box of the mask.
				count, sum := 0, [3]float64{}
				x1, y1, x2, y2 := 1<<30, 1<<30, -1, -1
				for y := 0; y < sc.H; y++ {
					for x := 0; x < sc.W; x++ {
						if sc.Owner[y*sc.W+x] != int16(k) {
							continue
						}
						count++
						x1, y1, x2, y2 = min(x1, x), min(y1, y), max(x2, x), max(y2, y)
						for c := 0; c < 3; c++ {
							sum[c] += float64(img.At(c, y, x))
						}
					}
				}
				if int(a.Area) != count {
					t.Errorf("ann %d: area %v, mask %d pixels", k, a.Area, count)
				}
				want := [4]float32{float32(x1), float32(y1), float32(x2 + 1), float32(y2 + 1)}
				if a.BBox != want {
					t.Errorf("ann %d: box %v, mask box %v", k, a.BBox, want)
				}
				// The JPEG shows the shape's colour where its mask is (mean
				// shading 0.92; JPEG chroma subsampling blurs the edges).
				if !o.IsCrowd && count > 200 {
					for c := 0; c < 3; c++ {
						if d := math.Abs(sum[c]/float64(count) - 0.92*float64(o.Colour[c])); d > 30 {
							t.Errorf("ann %d channel %d: mean %v, colour %d", k, c, sum[c]/float64(count), o.Colour[c])
						}
					}
				}
			}
		}
	}
	// Crowds and every size class appear over a few images.
	var crowd, small, medium, large int
	for i := 0; i < 40; i++ {
		sc, _ := Render(Options{Train: 1, Seed: 3}, "train", i)
		for _, o := range sc.Objects {
			switch {
			case o.IsCrowd:
				crowd++
			case o.Area < 32*32:
				small++
			case o.Area < 96*96:
				medium++
			default:
				large++
			}
		}
	}
	if crowd == 0 || small == 0 || medium == 0 || large == 0 {
		t.Errorf("crowd %d small %d medium %d large %d", crowd, small, medium, large)
	}
	// Ensure again: no-op; other options: error.
	if err := Ensure(dir, opts); err != nil {
		t.Errorf("second Ensure: %v", err)
	}
	if err := Ensure(dir, Options{Train: 6, Val: 3, Seed: 8, Size: 128, CrowdProb: 0.5}); err == nil {
		t.Error("Ensure with another seed accepted the existing set")
	}
	// Same seed, byte-identical JSON and images, whatever the worker count.
	dir2 := filepath.Join(t.TempDir(), "again")
	o2 := opts
	o2.Workers = 1
	if err := Generate(dir2, o2); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"annotations/instances_train.json", "annotations/instances_val.json", "train/000003.jpg", "val/000002.jpg"} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(dir2, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between runs", f)
		}
	}
	// No temporary directories left behind.
	ents, _ := os.ReadDir(filepath.Dir(dir))
	if len(ents) != 1 {
		t.Errorf("%d entries beside the set", len(ents))
	}
}

func TestEnsureRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(dir, Options{Train: 1, Size: 64}); err == nil {
		t.Error("non-empty foreign directory accepted")
	}
	// An empty directory is filled.
	empty := filepath.Join(t.TempDir(), "e")
	os.Mkdir(empty, 0o755)
	if err := Ensure(empty, Options{Train: 1, Size: 64}); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(TrainAnnotations(empty)); err != nil {
		t.Error(err)
	}
	if err := Ensure(t.TempDir(), Options{Size: 64}); err == nil {
		t.Error("zero images accepted")
	}
}

// COCO-size mode: image shapes like COCO's (landscape and portrait, many
// aspect ratios), so that batches at torchvision's 800/1333 with padding
// to 32 come in at least 30 distinct shapes; the JSON records each image's
// own size; the default mode is untouched by the extra stream.
func TestCOCOSizes(t *testing.T) {
	o, err := Options{Train: 200, Seed: 1, Sizes: "coco"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Size != 640 {
		t.Fatalf("default long side %d, want 640", o.Size)
	}
	padded := map[[2]int]bool{}
	portrait, wide := 0, 0
	for i := 0; i < 200; i++ {
		s1, s2 := splitSeed(o.Seed, "train", i)
		w, h := o.imageSize(s1, s2)
		if max(w, h) > 640 || float64(min(w, h)) < 0.75*640/2.3 {
			t.Fatalf("image %d: %dx%d", i, w, h)
		}
		if h > w {
			portrait++
		}
		if float64(max(w, h)) > 1.7*float64(min(w, h)) {
			wide++
		}
		_, rh, rw := data.ResizeScale(h, w, 800, 1333)
		padded[[2]int{(rh + 31) / 32 * 32, (rw + 31) / 32 * 32}] = true
	}
	if len(padded) < 30 {
		t.Errorf("%d distinct padded shapes at 800/1333, want >= 30", len(padded))
	}
	if portrait < 30 || portrait > 80 || wide < 10 {
		t.Errorf("%d portrait, %d elongated of 200", portrait, wide)
	}
	t.Logf("%d distinct padded shapes, %d portrait, %d elongated of 200", len(padded), portrait, wide)

	dir := filepath.Join(t.TempDir(), "coco")
	small := Options{Train: 4, Val: 2, Seed: 3, Size: 96, Sizes: "coco", Workers: 2}
	if err := Ensure(dir, small); err != nil {
		t.Fatal(err)
	}
	ds, err := data.LoadCOCO(TrainAnnotations(dir), TrainImages(dir), data.COCOOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range ds.Images {
		sc, err := Render(small, "train", i)
		if err != nil {
			t.Fatal(err)
		}
		img, err := data.DecodeImage(filepath.Join(TrainImages(dir), rec.FileName))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Width != sc.W || rec.Height != sc.H || img.W != sc.W || img.H != sc.H {
			t.Errorf("image %d: JSON %dx%d, JPEG %dx%d, scene %dx%d", i, rec.Width, rec.Height, img.W, img.H, sc.W, sc.H)
		}
	}
	// the square mode draws no size: same scene as before the mode existed
	sq, _ := Render(Options{Train: 1, Seed: 1, Size: 64}, "train", 0)
	if sq.W != 64 || sq.H != 64 {
		t.Errorf("square scene %dx%d", sq.W, sq.H)
	}
	if _, err := (Options{Train: 1, Sizes: "lvis"}).withDefaults(); err == nil {
		t.Error("unknown sizes mode accepted")
	}
}

// The COCO-size annotation writer gives a file both loaders accept, with
// the requested counts, COCO's 80 category ids, polygons and ~1% crowd.
func TestCOCOSizeAnnotations(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCOCOSizeAnnotations(&buf, AnnotationOptions{Images: 300, Annotations: 2000, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	ds, err := data.ParseCOCO(buf.Bytes(), "coco-size", "", data.COCOOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Images) != 300 || ds.Stats.Annotations != 2000 || ds.NumClasses() != 80 || ds.LabelToCatID[80] != 90 {
		t.Fatalf("%d images, %d annotations, %d classes", len(ds.Images), ds.Stats.Annotations, ds.NumClasses())
	}
	if ds.Stats.Crowd < 5 || ds.Stats.Crowd > 60 {
		t.Errorf("%d crowd annotations of 2000", ds.Stats.Crowd)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"segmentation": [[`)) || !bytes.Contains(buf.Bytes(), []byte(`"counts": [`)) {
		t.Error("no polygon or RLE segmentation written")
	}
	gt, err := cocoeval.ParseGT(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if gt.NumImages() != 300 {
		t.Errorf("cocoeval: %d images", gt.NumImages())
	}
	per := float64(buf.Len()) / 2000
	if per < 300 || per > 900 {
		t.Errorf("%.0f bytes per annotation (COCO train2017: ~520)", per)
	}
}
