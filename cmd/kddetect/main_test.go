package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/model"
)

const tinyYAML = `model:
  backbone: {depth: 18, width_mult: 0.125}
  fpn_channels: 16
  rpn: {pre_nms_top_n_test: 100, post_nms_top_n_test: 50}
  roi_heads: {num_classes: %d, representation_size: 32}
input: {min_size: [96], min_size_test: 96, max_size: 128}
data:
  labels: %s
  class_names: [circle, square, triangle, ring, cross]
`

// setup writes a tiny config (6 classes), its random weights and images.
func setup(t *testing.T, labels string) (dir, cfgPath, weights string) {
	t.Helper()
	dir = t.TempDir()
	cfgPath = filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(tinyYAML, 6, labels)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.LoadFile(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	det, err := model.New(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	det.Init(3)
	weights = filepath.Join(dir, "model.safetensors")
	if err := model.SaveWeights(det.Reg, weights, nil); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "images")
	if err := os.Mkdir(img, 0o755); err != nil {
		t.Fatal(err)
	}
	writeImage(t, filepath.Join(img, "b.png"), 90, 60)
	writeImage(t, filepath.Join(img, "a.jpg"), 64, 100)
	writeImage(t, filepath.Join(img, "c.JPEG"), 70, 70)
	if err := os.WriteFile(filepath.Join(img, "notes.txt"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, cfgPath, weights
}

func writeImage(t *testing.T, path string, w, h int) {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.RGBA{uint8(3 * x), uint8(2 * y), uint8(x * y % 256), 255})
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
		err = jpeg.Encode(f, m, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
}

type result struct {
	ImageID    int64      `json:"image_id"`
	FileName   string     `json:"file_name"`
	CategoryID int64      `json:"category_id"`
	BBox       [4]float64 `json:"bbox"`
	Score      float64    `json:"score"`
}

func readResults(t *testing.T, p string) []result {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var r []result
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	return r
}

func TestDetectEndToEnd(t *testing.T) {
	dir, cfgPath, weights := setup(t, "contiguous")
	out := filepath.Join(dir, "results.json")
	vis := filepath.Join(dir, "vis")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--config", cfgPath, "--weights", weights, "--images", filepath.Join(dir, "images"),
		"--out", out, "--vis", vis, "--vis-thresh", "0", "--batch-size", "2", "-v"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	t.Log(stdout.String())
	if !strings.Contains(stdout.String(), "3 of 3 images processed") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	r := readResults(t, out)
	if len(r) == 0 {
		t.Fatal("no detections")
	}
	// Sorted order: a.jpg (64x100), b.png (90x60), c.JPEG (70x70) -> ids 1, 2, 3.
	want := map[string]struct {
		id   int64
		w, h float64
	}{"a.jpg": {1, 64, 100}, "b.png": {2, 90, 60}, "c.JPEG": {3, 70, 70}}
	for _, d := range r {
		w, ok := want[d.FileName]
		if !ok || d.ImageID != w.id {
			t.Fatalf("detection %+v", d)
		}
		if d.CategoryID < 1 || d.CategoryID > 5 || d.Score < 0.05 || d.Score > 1 {
			t.Errorf("detection %+v", d)
		}
		if d.BBox[0] < 0 || d.BBox[1] < 0 || d.BBox[2] < 0 || d.BBox[3] < 0 || d.BBox[0]+d.BBox[2] > w.w+1e-3 || d.BBox[1]+d.BBox[3] > w.h+1e-3 {
			t.Errorf("box %v outside %vx%v", d.BBox, w.w, w.h)
		}
	}
	for name, w := range want {
		p := filepath.Join(vis, strings.TrimSuffix(name, filepath.Ext(name))+".png")
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if m.Bounds().Dx() != int(w.w) || m.Bounds().Dy() != int(w.h) {
			t.Errorf("%s is %v", p, m.Bounds())
		}
	}

	// A score threshold filters the file; category_id mode maps label to id.
	_, cfg2, weights2 := setup(t, "category_id")
	out2 := filepath.Join(dir, "r2.json")
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"--config", cfg2, "--weights", weights2, "--images", filepath.Join(dir, "images", "b.png"),
		"--out", out2, "--score-thresh", "0.18", "--quiet"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, d := range readResults(t, out2) {
		if d.Score < 0.18 || d.ImageID != 1 {
			t.Errorf("detection %+v", d)
		}
	}
}

func TestDetectAnnotationsAndBadImages(t *testing.T) {
	dir, cfgPath, weights := setup(t, "contiguous")
	images := filepath.Join(dir, "images")
	if err := os.WriteFile(filepath.Join(images, "d.jpg"), []byte("\xff\xd8\xff garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	ann := filepath.Join(dir, "ann.json")
	annJSON := `{"images":[{"id":42,"file_name":"val/a.jpg","width":64,"height":100},{"id":7,"file_name":"b.png","width":90,"height":60},
{"id":9,"file_name":"d.jpg","width":10,"height":10}],
"categories":[{"id":11,"name":"circle"},{"id":12,"name":"square"},{"id":20,"name":"triangle"},{"id":30,"name":"ring"},{"id":31,"name":"cross"}]}`
	if err := os.WriteFile(ann, []byte(annJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "results.json")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--config", cfgPath, "--weights", weights, "--images", images, "--ann", ann, "--out", out}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout.String(), stderr.String())
	}
	msg := stderr.String()
	t.Log(msg)
	if !strings.Contains(msg, "2 images failed") || !strings.Contains(msg, "c.JPEG: not listed in") || !strings.Contains(msg, "d.jpg") {
		t.Errorf("stderr:\n%s", msg)
	}
	if strings.Contains(msg, "goroutine") || strings.Contains(msg, "panic") {
		t.Errorf("panic trace:\n%s", msg)
	}
	r := readResults(t, out)
	ids := map[int64]bool{}
	cats := map[int64]bool{11: true, 12: true, 20: true, 30: true, 31: true}
	for _, d := range r {
		ids[d.ImageID] = true
		if !cats[d.CategoryID] {
			t.Errorf("category %d", d.CategoryID)
		}
	}
	if !ids[42] || !ids[7] || len(ids) != 2 {
		t.Errorf("image ids %v", ids)
	}
}

func TestDetectSetupErrors(t *testing.T) {
	dir, cfgPath, weights := setup(t, "contiguous")
	images := filepath.Join(dir, "images")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"missing weights", []string{"--config", cfgPath, "--weights", filepath.Join(dir, "nope.safetensors"), "--images", images, "--out", "x.json"},
			[]string{"nope.safetensors"}},
		{"class count", []string{"--config", cfgPath, "--weights", weights, "--images", images, "--out", "x.json", "--set", "model.roi_heads.num_classes=4"},
			[]string{"6 classes", "num_classes=4", "--set model.roi_heads.num_classes=6"}},
		{"bad config key", []string{"--config", cfgPath, "--weights", weights, "--images", images, "--out", "x.json", "--set", "model.roi_head.num_classes=4"},
			[]string{"roi_head"}},
		{"missing config", []string{"--config", filepath.Join(dir, "none.yaml"), "--weights", weights, "--images", images, "--out", "x.json"},
			[]string{"none.yaml"}},
		{"no output", []string{"--config", cfgPath, "--weights", weights, "--images", images}, []string{"--out"}},
		{"not weights", []string{"--config", cfgPath, "--weights", cfgPath, "--images", images, "--out", "x.json"}, []string{"tiny.yaml"}},
		{"missing image", []string{"--config", cfgPath, "--weights", weights, "--images", filepath.Join(images, "zz.jpg"), "--out", "x.json"}, []string{"zz.jpg"}},
		{"empty dir", []string{"--config", cfgPath, "--weights", weights, "--images", t.TempDir(), "--out", "x.json"}, []string{"no .jpg"}},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", c.name, code, stderr.String())
		}
		for _, w := range c.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, stderr.String())
			}
		}
		t.Logf("%s: %s", c.name, stderr.String())
		if strings.Contains(stderr.String(), "goroutine") {
			t.Errorf("%s: panic trace", c.name)
		}
	}
}
