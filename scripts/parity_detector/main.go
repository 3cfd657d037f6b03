// Command parity_detector compares the project's Faster R-CNN with
// torchvision's on full-size images: it loads a torchvision state dict into
// model.New(cfg) from a config file, applies the config's eval transform
// (package data), runs Detect one image at a time, maps the boxes back to
// original pixels and matches them against torchvision's detections
// (DIR/expected.json written by scripts/golden_detector.py --full): same
// class, IoU >= -iou, |score difference| <= -score. With -results it
// instead matches a COCO results file written by kddetect on the same
// images (category_id = label, bbox xywh in original pixels). Used by
// scripts/parity_detector_full.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/skd-go/skd/boxes"
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/model"
)

type expected struct {
	Images []struct {
		File   string       `json:"file"`
		Height int          `json:"height"`
		Width  int          `json:"width"`
		Boxes  [][4]float32 `json:"boxes"`
		Scores []float32    `json:"scores"`
		Labels []int        `json:"labels"`
	} `json:"images"`
}

func main() {
	dir := flag.String("dir", "", "directory written by golden_detector.py --full (frcnn.pth, PNGs, expected.json)")
	cfgPath := flag.String("config", "configs/torchvision/fasterrcnn_resnet50_fpn.yaml", "model config")
	minIoU := flag.Float64("iou", 0.999, "IoU a match needs")
	maxScore := flag.Float64("score", 1e-4, "largest score difference of a match")
	minRate := flag.Float64("rate", 0.99, "exit status 1 below this match rate")
	results := flag.String("results", "", "compare this COCO results JSON (kddetect --out) instead of running the model")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "parity_detector: -dir is required")
		os.Exit(2)
	}
	var rate float64
	var err error
	if *results != "" {
		rate, err = compareResults(*dir, *results, *minIoU, *maxScore)
	} else {
		rate, err = run(*dir, *cfgPath, *minIoU, *maxScore)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parity_detector:", err)
		os.Exit(1)
	}
	if rate < *minRate {
		fmt.Printf("FAIL: match rate %.2f%% < %.2f%%\n", 100*rate, 100**minRate)
		os.Exit(1)
	}
	fmt.Println("PASS")
}

func readExpected(dir string) (*expected, error) {
	p := filepath.Join(dir, "expected.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var exp expected
	if err := json.Unmarshal(raw, &exp); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &exp, nil
}

// compareResults matches kddetect's COCO results against torchvision's.
func compareResults(dir, results string, minIoU, maxScore float64) (float64, error) {
	exp, err := readExpected(dir)
	if err != nil {
		return 0, err
	}
	raw, err := os.ReadFile(results)
	if err != nil {
		return 0, err
	}
	var res []struct {
		FileName   string     `json:"file_name"`
		CategoryID int        `json:"category_id"`
		BBox       [4]float32 `json:"bbox"`
		Score      float32    `json:"score"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return 0, fmt.Errorf("%s: %w", results, err)
	}
	matched, total := 0, 0
	for _, im := range exp.Images {
		var got [][4]float32
		var gs []float32
		var gl []int
		for _, r := range res {
			if filepath.Base(r.FileName) != im.File {
				continue
			}
			got = append(got, [4]float32{r.BBox[0], r.BBox[1], r.BBox[0] + r.BBox[2], r.BBox[1] + r.BBox[3]})
			gs = append(gs, r.Score)
			gl = append(gl, r.CategoryID)
		}
		m, wi, ws := match(got, gs, gl, im.Boxes, im.Scores, im.Labels, minIoU, maxScore)
		fmt.Printf("kddetect %s: torchvision %d detections, kddetect %d, matched %d; worst matched IoU %.6f, score difference %.2g\n",
			im.File, len(im.Scores), len(gs), m, wi, ws)
		matched += m
		total += max(len(im.Scores), len(gs))
	}
	if total == 0 {
		return 0, fmt.Errorf("no detections on either side: nothing compared")
	}
	rate := float64(matched) / float64(total)
	fmt.Printf("kddetect match rate: %d/%d = %.2f%%\n", matched, total, 100*rate)
	return rate, nil
}

func run(dir, cfgPath string, minIoU, maxScore float64) (float64, error) {
	exp, err := readExpected(dir)
	if err != nil {
		return 0, err
	}
	f, _, err := config.LoadFile(cfgPath, nil)
	if err != nil {
		return 0, err
	}
	d, err := model.New(f.Model)
	if err != nil {
		return 0, err
	}
	if _, err := model.LoadWeights(d.Reg, filepath.Join(dir, "frcnn.pth"), model.LoadOptions{}); err != nil {
		return 0, err
	}
	tc := data.TransformConfig{MinSizes: []int{f.Input.MinSizeTest}, MaxSize: f.Input.MaxSize, Format: f.Input.Format, SizeDivisible: f.Input.SizeDivisible}
	matched, total := 0, 0
	worstIoU, worstScore := 1.0, 0.0
	for _, im := range exp.Images {
		path := filepath.Join(dir, im.File)
		img, err := data.DecodeImage(path)
		if err != nil {
			return 0, err
		}
		if img.H != im.Height || img.W != im.Width {
			return 0, fmt.Errorf("%s: decoded %dx%d, expected %dx%d", path, img.H, img.W, im.Height, im.Width)
		}
		s, err := data.TransformSample(img, nil, nil, tc, false, nil)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		b, err := data.Collate([]*data.Sample{s}, tc.SizeDivisible)
		if err != nil {
			return 0, err
		}
		it := &b.Items[0]
		in := &model.Input{N: 1, H: b.H, W: b.W, Images: b.Images, Sizes: [][2]int{{it.H, it.W}}}
		t0 := time.Now()
		dets, _, err := d.Detect(in)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		el := time.Since(t0)
		det := dets[0]
		got := make([][4]float32, len(det.Scores))
		for j := range got {
			got[j] = it.ToOriginal([4]float32{det.Boxes[4*j], det.Boxes[4*j+1], det.Boxes[4*j+2], det.Boxes[4*j+3]})
		}
		m, wi, ws := match(got, det.Scores, det.Labels, im.Boxes, im.Scores, im.Labels, minIoU, maxScore)
		n := max(len(im.Scores), len(det.Scores))
		fmt.Printf("%s (%dx%d -> %dx%d, padded %dx%d): torchvision %d detections, Go %d, matched %d; worst matched IoU %.6f, score difference %.2g; Detect %.1f s\n",
			im.File, im.Height, im.Width, it.H, it.W, b.H, b.W, len(im.Scores), len(det.Scores), m, wi, ws, el.Seconds())
		matched += m
		total += n
		worstIoU = math.Min(worstIoU, wi)
		worstScore = math.Max(worstScore, ws)
	}
	if total == 0 {
		return 0, fmt.Errorf("no detections on either side: nothing compared")
	}
	rate := float64(matched) / float64(total)
	fmt.Printf("match rate (class, IoU >= %g, |score diff| <= %g): %d/%d = %.2f%%; worst matched IoU %.6f, worst score difference %.2g\n",
		minIoU, maxScore, matched, total, 100*rate, worstIoU, worstScore)
	return rate, nil
}

// match pairs every reference detection with an unused one of the same
// class within the tolerances, the best IoU first.
func match(got [][4]float32, gs []float32, gl []int, want [][4]float32, ws []float32, wl []int, minIoU, maxScore float64) (int, float64, float64) {
	used := make([]bool, len(got))
	n, worstIoU, worstScore := 0, 1.0, 0.0
	for i := range want {
		best, bestIoU := -1, 0.0
		for j := range got {
			if used[j] || gl[j] != wl[i] || math.Abs(float64(gs[j])-float64(ws[i])) > maxScore {
				continue
			}
			v, err := boxes.IoU(got[j][:], want[i][:])
			if err != nil || len(v) != 1 {
				continue
			}
			if iou := float64(v[0]); iou >= minIoU && iou > bestIoU {
				best, bestIoU = j, iou
			}
		}
		if best < 0 {
			continue
		}
		used[best] = true
		n++
		worstIoU = math.Min(worstIoU, bestIoU)
		worstScore = math.Max(worstScore, math.Abs(float64(gs[best])-float64(ws[i])))
	}
	return n, worstIoU, worstScore
}
