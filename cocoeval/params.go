package cocoeval

import (
	"fmt"
	"math"
	"runtime"
	"slices"
)

// Params are the evaluation parameters, pycocotools' COCOeval.params for
// iouType "bbox" with useCats = 1 (useCats = 0 is not supported).
type Params struct {
	// ImgIDs restricts the evaluation to these images (nil: all GT images;
	// an empty non-nil slice: none, every number -1). As in pycocotools they
	// are sorted and de-duplicated; every id must be a GT image.
	ImgIDs []int64
	// CatIDs restricts the evaluation to these categories (nil: all GT
	// categories), sorted and de-duplicated; every id must be a GT category.
	CatIDs []int64
	// IouThrs are the IoU thresholds (default .50:.05:.95, computed as
	// numpy.linspace does, so 0.9 is 0.8999999999999999).
	IouThrs []float64
	// RecThrs are the recall sampling points (default 101 points 0:.01:1).
	RecThrs []float64
	// MaxDets are the detections-per-image limits (default 1, 10, 100);
	// sorted ascending as pycocotools does. The summary needs at least 3.
	MaxDets []int
	// AreaRng are inclusive [lo, hi] area ranges, with labels AreaRngLbl
	// (default all, small, medium, large).
	AreaRng    [][2]float64
	AreaRngLbl []string
	// Workers is the number of goroutines (0: GOMAXPROCS). Results do not
	// depend on it.
	Workers int
}

// linspace reproduces numpy.linspace(start, stop, num, endpoint=True) bit for
// bit: start + i*((stop-start)/(num-1)), with the last value set to stop.
func linspace(start, stop float64, num int) []float64 {
	out := make([]float64, num)
	if num == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(num-1)
	for i := range out {
		// explicit conversion: no fused multiply-add (numpy rounds twice)
		out[i] = float64(float64(i)*step) + start
	}
	out[num-1] = stop
	return out
}

// DefaultParams returns pycocotools' defaults for bbox evaluation.
func DefaultParams() Params {
	return Params{
		IouThrs:    linspace(.5, 0.95, int(math.Round((0.95-.5)/.05))+1),
		RecThrs:    linspace(.0, 1.00, int(math.Round((1.00-.0)/.01))+1),
		MaxDets:    []int{1, 10, 100},
		AreaRng:    [][2]float64{{0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}},
		AreaRngLbl: []string{"all", "small", "medium", "large"},
	}
}

// normalize returns a validated copy of p with the GT's ids filled in, ids
// and MaxDets sorted as pycocotools' evaluate() does.
func (p Params) normalize(gt *Dataset) (Params, error) {
	q := p
	q.IouThrs = slices.Clone(p.IouThrs)
	q.RecThrs = slices.Clone(p.RecThrs)
	q.MaxDets = slices.Clone(p.MaxDets)
	q.AreaRng = slices.Clone(p.AreaRng)
	q.AreaRngLbl = slices.Clone(p.AreaRngLbl)
	if p.ImgIDs == nil {
		q.ImgIDs = make([]int64, len(gt.Images))
		for i, im := range gt.Images {
			q.ImgIDs[i] = im.ID
		}
	} else {
		q.ImgIDs = slices.Clone(p.ImgIDs)
		for _, id := range q.ImgIDs {
			if !gt.HasImage(id) {
				return q, fmt.Errorf("Params.ImgIDs: image id %d is not in the ground truth %s", id, gt.Source)
			}
		}
	}
	slices.Sort(q.ImgIDs)
	q.ImgIDs = slices.Compact(q.ImgIDs)
	if p.CatIDs == nil {
		q.CatIDs = make([]int64, len(gt.Categories))
		for i, c := range gt.Categories {
			q.CatIDs[i] = c.ID
		}
	} else {
		q.CatIDs = slices.Clone(p.CatIDs)
		for _, id := range q.CatIDs {
			if _, ok := gt.catIndex[id]; !ok {
				return q, fmt.Errorf("Params.CatIDs: category id %d is not in the ground truth %s", id, gt.Source)
			}
		}
	}
	slices.Sort(q.CatIDs)
	q.CatIDs = slices.Compact(q.CatIDs)
	slices.Sort(q.MaxDets)
	if len(q.IouThrs) == 0 || len(q.RecThrs) == 0 {
		return q, fmt.Errorf("Params: IouThrs and RecThrs must not be empty")
	}
	for _, v := range append(slices.Clone(q.IouThrs), q.RecThrs...) {
		if math.IsNaN(v) {
			return q, fmt.Errorf("Params: NaN threshold")
		}
	}
	if len(q.MaxDets) < 3 {
		return q, fmt.Errorf("Params.MaxDets: need at least 3 values for the 12-number summary, have %v", q.MaxDets)
	}
	if q.MaxDets[0] < 0 {
		return q, fmt.Errorf("Params.MaxDets: negative value %d", q.MaxDets[0])
	}
	if len(q.AreaRng) == 0 || len(q.AreaRng) != len(q.AreaRngLbl) {
		return q, fmt.Errorf("Params: %d area ranges but %d labels", len(q.AreaRng), len(q.AreaRngLbl))
	}
	if q.Workers <= 0 {
		q.Workers = runtime.GOMAXPROCS(0)
	}
	return q, nil
}
