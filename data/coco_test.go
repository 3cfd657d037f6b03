package data

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const goodJSON = `{
 "images": [
  {"id": 10, "file_name": "a.jpg", "width": 100, "height": 50},
  {"id": 11, "file_name": "b.jpg", "width": 40, "height": 80},
  {"id": 12, "file_name": "c.jpg", "width": 30, "height": 30}
 ],
 "categories": [
  {"id": 7, "name": "cross"}, {"id": 3, "name": "circle"}, {"id": 90, "name": "ring"}
 ],
 "annotations": [
  {"id": 1, "image_id": 10, "category_id": 3, "bbox": [10, 5, 20, 10], "area": 150, "iscrowd": 0},
  {"id": 2, "image_id": 10, "category_id": 90, "bbox": [90, 40, 30, 30], "area": 80, "iscrowd": 0},
  {"id": 3, "image_id": 10, "category_id": 7, "bbox": [0, 0, 50, 50], "area": 900, "iscrowd": 1},
  {"id": 4, "image_id": 11, "category_id": 7, "bbox": [5, 5, 0, 10], "area": 0, "iscrowd": 0},
  {"id": 5, "image_id": 11, "category_id": 7, "bbox": [50, 5, 10, 10], "area": 10, "iscrowd": 0},
  {"id": 6, "image_id": 11, "category_id": 7, "bbox": [-10, -10, 5, 5], "area": 10, "iscrowd": 0},
  {"id": 7, "image_id": 12, "category_id": 3, "bbox": [-2, 3, 10, 4], "area": 30, "iscrowd": 0}
 ]
}`

func TestParseCOCO(t *testing.T) {
	ds, err := ParseCOCO([]byte(goodJSON), "x.json", "imgs", COCOOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// Labels follow ascending category ids: 3->1, 7->2, 90->3.
	wantIDs := []int64{0, 3, 7, 90}
	for l, id := range wantIDs {
		if ds.LabelToCatID[l] != id {
			t.Errorf("LabelToCatID[%d] = %d, want %d", l, ds.LabelToCatID[l], id)
		}
		if l > 0 && ds.CatIDToLabel[id] != l {
			t.Errorf("CatIDToLabel[%d] = %d, want %d", id, ds.CatIDToLabel[id], l)
		}
	}
	if ds.CategoryName(1) != "circle" || ds.CategoryName(2) != "cross" || ds.CategoryName(3) != "ring" || ds.CategoryName(0) != "background" {
		t.Errorf("names: %q %q %q", ds.CategoryName(1), ds.CategoryName(2), ds.CategoryName(3))
	}
	if ds.NumClasses() != 3 || len(ds.Images) != 3 {
		t.Fatalf("classes %d images %d", ds.NumClasses(), len(ds.Images))
	}
	a := ds.Images[0]
	if a.Path != filepath.Join("imgs", "a.jpg") {
		t.Errorf("path %q", a.Path)
	}
	// Crowd kept in Annotations, not in training targets.
	if len(a.Annotations) != 3 || len(a.Boxes) != 2 || !a.Annotations[2].IsCrowd {
		t.Fatalf("image 10: %d anns, %d boxes", len(a.Annotations), len(a.Boxes))
	}
	if a.Boxes[0] != [4]float32{10, 5, 30, 15} || a.Labels[0] != 1 {
		t.Errorf("box0 %v label %d", a.Boxes[0], a.Labels[0])
	}
	// Clipped to 100x50.
	if a.Boxes[1] != [4]float32{90, 40, 100, 50} || a.Labels[1] != 3 {
		t.Errorf("box1 %v label %d", a.Boxes[1], a.Labels[1])
	}
	if a.Annotations[2].Area != 900 || a.Annotations[2].RawBBox != [4]float64{0, 0, 50, 50} {
		t.Errorf("crowd ann %+v", a.Annotations[2])
	}
	// Image 11: zero width, outside the image -> dropped; one left (clipped x 50..40 -> outside too).
	b := ds.Images[1]
	if len(b.Boxes) != 0 {
		t.Errorf("image 11 boxes %v", b.Boxes)
	}
	c := ds.Images[2]
	if len(c.Boxes) != 1 || c.Boxes[0] != [4]float32{0, 3, 8, 7} {
		t.Errorf("image 12 boxes %v", c.Boxes)
	}
	st := ds.Stats
	if st.InvalidBoxes != 3 || st.Crowd != 1 || st.ImagesNoTargets != 1 || st.ImagesFiltered != 0 || st.Annotations != 7 {
		t.Errorf("stats %+v", st)
	}
	// FilterEmpty drops image 11.
	ds2, err := ParseCOCO([]byte(goodJSON), "x.json", "imgs", COCOOptions{FilterEmpty: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds2.Images) != 2 || ds2.Images[1].ID != 12 || ds2.Stats.ImagesFiltered != 1 {
		t.Errorf("filtered: %d images, stats %+v", len(ds2.Images), ds2.Stats)
	}
}

func TestParseCOCONaN(t *testing.T) {
	// JSON has no NaN literal; a huge number overflows to an error, so
	// test the clipping helper directly for non-finite input.
	nan := 0.0
	nan = nan / nan
	if _, ok := clipBox([]float64{nan, 0, 1, 1}, 10, 10); ok {
		t.Error("NaN box accepted")
	}
	if _, ok := clipBox([]float64{1, 1, 2, 2}, 10, 10); !ok {
		t.Error("good box rejected")
	}
}

func TestCOCOBadInputs(t *testing.T) {
	cases := []struct {
		name, json, want string
	}{
		{"malformed", "{\n \"images\": [\n  {\"id\": 1,, }\n ]}", "bad.json:3:12: malformed JSON"},
		{"truncated", "{\"images\": [", "bad.json:1:12: malformed JSON"},
		{"wrongtype", "{\"images\": [{\"id\": \"x\"}]}", "bad.json:1:22: wrong JSON type"},
		{"dupimage", `{"images":[{"id":1,"file_name":"a","width":2,"height":2},{"id":1,"file_name":"b","width":2,"height":2}]}`,
			"duplicate image id 1"},
		{"unknownimage", `{"images":[{"id":1,"file_name":"a","width":2,"height":2}],"categories":[{"id":1,"name":"x"}],
			"annotations":[{"id":5,"image_id":2,"category_id":1,"bbox":[0,0,1,1]}]}`, "annotation id 5 refers to unknown image id 2"},
		{"unknowncat", `{"images":[{"id":1,"file_name":"a","width":2,"height":2}],"categories":[{"id":1,"name":"x"}],
			"annotations":[{"id":5,"image_id":1,"category_id":4,"bbox":[0,0,1,1]}]}`, "annotation id 5 refers to unknown category id 4"},
		{"dupann", `{"images":[{"id":1,"file_name":"a","width":2,"height":2}],"categories":[{"id":1,"name":"x"}],
			"annotations":[{"id":5,"image_id":1,"category_id":1,"bbox":[0,0,1,1]},{"id":5,"image_id":1,"category_id":1,"bbox":[0,0,1,1]}]}`,
			"duplicate annotation id 5"},
		{"dupcat", `{"categories":[{"id":1,"name":"x"},{"id":1,"name":"y"}]}`, "duplicate category id 1"},
		{"bboxlen", `{"images":[{"id":1,"file_name":"a","width":2,"height":2}],"categories":[{"id":1,"name":"x"}],
			"annotations":[{"id":5,"image_id":1,"category_id":1,"bbox":[0,0,1]}]}`, "bbox has 3 numbers"},
		{"nosize", `{"images":[{"id":1,"file_name":"a"}]}`, "no positive width and height"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.json")
			if err := os.WriteFile(p, []byte(c.json), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadCOCO(p, dir, COCOOptions{Logger: quiet})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.json") {
				t.Fatalf("error %v, want it to contain %q and the file name", err, c.want)
			}
		})
	}
	if _, err := LoadCOCO(filepath.Join(dir, "missing.json"), dir, COCOOptions{}); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

func TestLineCol(t *testing.T) {
	b := []byte("ab\ncde\nf")
	for _, c := range []struct {
		off       int64
		line, col int
	}{{0, 1, 1}, {1, 1, 1}, {2, 1, 2}, {3, 1, 3}, {4, 2, 1}, {7, 2, 4}, {8, 3, 1}} {
		l, col := lineCol(b, c.off)
		if l != c.line || col != c.col {
			t.Errorf("offset %d: %d:%d want %d:%d", c.off, l, col, c.line, c.col)
		}
	}
}
