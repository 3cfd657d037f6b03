package synth

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/skd-go/skd/data"
)

// The hard variant: a real COCO set (JSON matches the rendered masks,
// loads in data.LoadCOCO with 16 classes), deterministic, and its holdout
// split is the training stream's continuation.
func TestHardGenerateAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hard")
	opts := Options{Train: 6, Val: 4, Holdout: 3, Seed: 5, Size: 160, Variant: "hard", CrowdProb: 0.5, Workers: 2}
	if err := Ensure(dir, opts); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []struct {
		ann, imgs, split, stream string
		n, offset                int
	}{{TrainAnnotations(dir), TrainImages(dir), "train", "train", 6, 0},
		{ValAnnotations(dir), ValImages(dir), "val", "val", 4, 0},
		{HoldoutAnnotations(dir), HoldoutImages(dir), "holdout", "train", 3, 6}} {
		ds, err := data.LoadCOCO(sp.ann, sp.imgs, data.COCOOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds.Images) != sp.n || ds.NumClasses() != 16 || ds.CategoryName(7) != "square_striped" || ds.CategoryName(16) != "cross_dotted" {
			t.Fatalf("%s: %d images, %d classes, %q", sp.split, len(ds.Images), ds.NumClasses(), ds.CategoryName(7))
		}
		if ds.Stats.InvalidBoxes != 0 {
			t.Errorf("%s: %d invalid boxes", sp.split, ds.Stats.InvalidBoxes)
		}
		for i, rec := range ds.Images {
			sc, err := Render(opts, sp.stream, sp.offset+i)
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
			if img.W != 160 || img.H != 160 {
				t.Fatalf("image %dx%d", img.W, img.H)
			}
			for k, a := range rec.Annotations {
				o := sc.Objects[k]
				if a.IsCrowd != o.IsCrowd || a.Label != o.Class+1 {
					t.Errorf("ann %d: crowd %v label %d, scene %+v", k, a.IsCrowd, a.Label, o)
				}
				count := 0
				x1, y1, x2, y2 := 1<<30, 1<<30, -1, -1
				for y := 0; y < sc.H; y++ {
					for x := 0; x < sc.W; x++ {
						if sc.Owner[y*sc.W+x] == int16(k) {
							count++
							x1, y1, x2, y2 = min(x1, x), min(y1, y), max(x2, x), max(y2, y)
						}
					}
				}
				if int(a.Area) != count {
					t.Errorf("%s %d ann %d: area %v, mask %d pixels", sp.split, i, k, a.Area, count)
				}
				if want := [4]float32{float32(x1), float32(y1), float32(x2 + 1), float32(y2 + 1)}; a.BBox != want {
					t.Errorf("%s %d ann %d: box %v, mask box %v", sp.split, i, k, a.BBox, want)
				}
			}
		}
	}
	// Same options, one worker: byte-identical files.
	dir2 := filepath.Join(t.TempDir(), "again")
	o2 := opts
	o2.Workers = 1
	if err := Generate(dir2, o2); err != nil {
		t.Fatal(err)
	}
	// A set with 9 training images and no holdout: its images 7-9 are the
	// first set's holdout split.
	dir3 := filepath.Join(t.TempDir(), "nine")
	o3 := opts
	o3.Train, o3.Holdout = 9, 0
	if err := Generate(dir3, o3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ a, b string }{
		{filepath.Join(dir, "annotations/instances_train.json"), filepath.Join(dir2, "annotations/instances_train.json")},
		{filepath.Join(dir, "annotations/instances_holdout.json"), filepath.Join(dir2, "annotations/instances_holdout.json")},
		{filepath.Join(dir, "val/000004.jpg"), filepath.Join(dir2, "val/000004.jpg")},
		{filepath.Join(dir, "holdout/000001.jpg"), filepath.Join(dir3, "train/000007.jpg")},
		{filepath.Join(dir, "holdout/000003.jpg"), filepath.Join(dir3, "train/000009.jpg")},
	} {
		a, _ := os.ReadFile(c.a)
		b, _ := os.ReadFile(c.b)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s and %s differ", c.a, c.b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir3, "holdout")); !os.IsNotExist(err) {
		t.Errorf("a set without holdout has a holdout folder (%v)", err)
	}
	if err := Ensure(dir, Options{Train: 6, Val: 4, Seed: 5, Size: 160, CrowdProb: 0.5}); err == nil {
		t.Error("Ensure of the default variant accepted the hard set")
	}
	if _, err := Render(Options{Train: 1, Variant: "harder"}, "train", 0); err == nil {
		t.Error("unknown variant accepted")
	}
	if _, err := Render(Options{Train: 1, Holdout: -1}, "train", 0); err == nil {
		t.Error("negative holdout accepted")
	}
}

// Over many scenes every class, crowds, tiny (< 16^2), small, medium and
// large objects appear, and objects are occluded (by clutter or each
// other): some keep well under their full area.
func TestHardSceneStatistics(t *testing.T) {
	o := Options{Train: 1, Seed: 9, Variant: "hard"}
	classes := map[int]int{}
	var crowd, tiny, small, medium, large, occluded int
	for i := 0; i < 60; i++ {
		sc, err := Render(o, "train", i)
		if err != nil {
			t.Fatal(err)
		}
		for _, ob := range sc.Objects {
			if ob.IsCrowd {
				crowd++
				continue
			}
			classes[ob.Class]++
			switch a := ob.Area; {
			case a < 16*16:
				tiny++
			case a < 32*32:
				small++
			case a < 96*96:
				medium++
			default:
				large++
			}
			// The box area of a fully visible shape is at most ~d^2; a box
			// much larger than the visible area means pixels were hidden.
			if float64(ob.Area) < 0.3*ob.BBox[2]*ob.BBox[3] {
				occluded++
			}
		}
	}
	if len(classes) != 16 || crowd == 0 || tiny == 0 || small == 0 || medium == 0 || large == 0 || occluded == 0 {
		t.Errorf("classes %d crowd %d tiny %d small %d medium %d large %d occluded %d", len(classes), crowd, tiny, small, medium, large, occluded)
	}
}

// The details that tell the classes apart: stripes and dots paint the
// second colour where they should, a notch removes pixels, clutter shapes
// are drawn.
func TestHardDetails(t *testing.T) {
	count := func(it *item) (in, second int) {
		it.cosT, it.sinT = math.Cos(it.theta), math.Sin(it.theta)
		for y := -60; y < 60; y++ {
			for x := -60; x < 60; x++ {
				a, b := it.covers(float64(x)+0.5, float64(y)+0.5)
				if a {
					in++
					if b {
						second++
					}
				}
			}
		}
		return
	}
	for base := 0; base < 4; base++ {
		mk := func(detail int) *item {
			return &item{shape: shape{class: 4*base + detail, d: 100, theta: 0.3}, detail: detail, clutter: -1}
		}
		plain, p2 := count(mk(0))
		notched, n2 := count(mk(1))
		striped, s2 := count(mk(2))
		dotted, d2 := count(mk(3))
		if p2 != 0 || n2 != 0 || plain != striped || plain != dotted {
			t.Errorf("base %d: plain %d/%d notched %d/%d striped %d dotted %d", base, plain, p2, notched, n2, striped, dotted)
		}
		if notched >= plain-100 {
			t.Errorf("base %d: the notch removes %d of %d pixels", base, plain-notched, plain)
		}
		if s2 < striped/4 || s2 > 3*striped/4 {
			t.Errorf("base %d: %d of %d striped pixels in the second colour", base, s2, striped)
		}
		if in, sec := mk(3).covers(0.01, 0.01); !in || !sec {
			t.Errorf("base %d: the dot is not at the centre", base)
		}
		if d2 == 0 || d2 > dotted/4 {
			t.Errorf("base %d: dot %d of %d pixels", base, d2, dotted)
		}
	}
	for k := 0; k < 4; k++ {
		if in, _ := count(&item{shape: shape{d: 100}, clutter: k, aspect: 4}); in < 200 {
			t.Errorf("clutter %d covers %d pixels", k, in)
		}
	}
}
