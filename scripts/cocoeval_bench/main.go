// Command cocoeval_bench times package cocoeval on a generated COCO-val-sized
// set (5000 images, 80 categories, 180k detections; see cocoeval/synth) and
// compares with pycocotools' 62 s on the same kind of machine. Run it under
// the shared benchmark lock:
//
//	flock /tmp/bench.lock go run ./scripts/cocoeval_bench [-reps 3] [-write DIR]
//
// -write DIR also writes gt.json and dets.json there and times loading them
// (and lets `kdeval --ann DIR/gt.json --results DIR/dets.json` be timed).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/cocoeval/synth"
)

const pycocotoolsSeconds = 62.0 // REFERENCE.md §3: 5000 images, 80 classes, 180k detections

func main() {
	cfg := synth.COCOVal
	reps := flag.Int("reps", 3, "timed repetitions of the evaluation")
	workers := flag.Int("workers", 0, "goroutines (0: GOMAXPROCS)")
	write := flag.String("write", "", "directory to write gt.json and dets.json to (and time loading them)")
	flag.IntVar(&cfg.Images, "images", cfg.Images, "images")
	flag.IntVar(&cfg.DetsPerImage, "dets-per-image", cfg.DetsPerImage, "detections per image")
	flag.Parse()
	if err := run(cfg, *reps, *workers, *write); err != nil {
		fmt.Fprintln(os.Stderr, "cocoeval_bench:", err)
		os.Exit(1)
	}
}

func run(cfg synth.Config, reps, workers int, dir string) error {
	gt, dets, err := synth.Generate(cfg)
	if err != nil {
		return err
	}
	crowd := 0
	for _, a := range gt.Annotations {
		if a.IsCrowd {
			crowd++
		}
	}
	fmt.Printf("set: %d images, %d categories, %d GT (%d crowd), %d detections; GOMAXPROCS %d, %d CPUs\n",
		len(gt.Images), len(gt.Categories), len(gt.Annotations), crowd, len(dets), runtime.GOMAXPROCS(0), runtime.NumCPU())
	if dir != "" {
		gtPath, detPath := filepath.Join(dir, "gt.json"), filepath.Join(dir, "dets.json")
		if err := writeJSON(gt, dets, gtPath, detPath); err != nil {
			return err
		}
		t0 := time.Now()
		gt2, err := cocoeval.LoadGT(gtPath)
		if err != nil {
			return err
		}
		dets2, err := cocoeval.LoadResults(gt2, detPath)
		if err != nil {
			return err
		}
		fmt.Printf("load gt.json + dets.json: %.3f s\n", time.Since(t0).Seconds())
		gt, dets = gt2, dets2
	}
	p := cocoeval.DefaultParams()
	p.Workers = workers
	var times []float64
	var res *cocoeval.Result
	for range reps {
		runtime.GC()
		t0 := time.Now()
		res, err = cocoeval.Evaluate(gt, dets, p)
		if err != nil {
			return err
		}
		times = append(times, time.Since(t0).Seconds())
	}
	slices.Sort(times)
	fmt.Print(res.Summary())
	best, med := times[0], times[len(times)/2]
	fmt.Printf("evaluate (evaluate+accumulate+summarize): best %.3f s, median %.3f s of %d; pycocotools %.0f s -> %.0fx (best), %.0fx (median)\n",
		best, med, len(times), pycocotoolsSeconds, pycocotoolsSeconds/best, pycocotoolsSeconds/med)
	return nil
}

func writeJSON(gt *cocoeval.Dataset, dets []cocoeval.Detection, gtPath, detPath string) error {
	type img struct {
		ID     int64 `json:"id"`
		Width  int   `json:"width"`
		Height int   `json:"height"`
	}
	type ann struct {
		ID         int64      `json:"id"`
		ImageID    int64      `json:"image_id"`
		CategoryID int64      `json:"category_id"`
		BBox       [4]float64 `json:"bbox"`
		Area       float64    `json:"area"`
		IsCrowd    int        `json:"iscrowd"`
	}
	type cat struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	type det struct {
		ImageID    int64      `json:"image_id"`
		CategoryID int64      `json:"category_id"`
		BBox       [4]float64 `json:"bbox"`
		Score      float64    `json:"score"`
	}
	var out struct {
		Images      []img `json:"images"`
		Annotations []ann `json:"annotations"`
		Categories  []cat `json:"categories"`
	}
	for _, im := range gt.Images {
		out.Images = append(out.Images, img{im.ID, im.Width, im.Height})
	}
	for _, a := range gt.Annotations {
		c := 0
		if a.IsCrowd {
			c = 1
		}
		out.Annotations = append(out.Annotations, ann{a.ID, a.ImageID, a.CategoryID, a.BBox, a.Area, c})
	}
	for _, c := range gt.Categories {
		out.Categories = append(out.Categories, cat{c.ID, c.Name})
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := os.WriteFile(gtPath, data, 0o644); err != nil {
		return err
	}
	ds := make([]det, len(dets))
	for i, d := range dets {
		ds[i] = det{d.ImageID, d.CategoryID, d.BBox, d.Score}
	}
	if data, err = json.Marshal(ds); err != nil {
		return err
	}
	return os.WriteFile(detPath, data, 0o644)
}
