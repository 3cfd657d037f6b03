// Package cocoeval reproduces pycocotools' COCOeval for bounding boxes
// (iouType "bbox", useCats 1): the same matching, accumulation and summary,
// number for number, in pure Go and in parallel over categories.
//
// Typical use:
//
//	gt, err := cocoeval.LoadGT("instances_val2017.json")
//	dets, err := cocoeval.LoadResults(gt, "detections.json")
//	res, err := cocoeval.Evaluate(gt, dets, cocoeval.DefaultParams())
//	fmt.Print(res.Summary(), res.PerClassTable())
//
// A trainer can pass detections in memory ([]Detection) without a file.
//
// Semantics kept from pycocotools (see docs/COCOEVAL.md): IoU on xywh
// without +1, with the detection's area as union for crowd GT; GT area from
// the "area" field; inclusive area ranges; stable descending-score sorts;
// per image only the first maxDets[-1] detections; greedy matching at
// min(t, 1-1e-10) where crowd GT match many and on equal IoU the later GT
// wins; 101-point interpolated precision; -1 for "no GT", left out of the
// means. Quirks kept on purpose: a detection matched to a GT annotation with
// id 0 counts as unmatched (pycocotools stores the matched id and tests it
// against 0; Result.Warnings says so), and the IoU thresholds are numpy's
// linspace values (0.9 is 0.8999999999999999).
//
// Differences, all on inputs where pycocotools fails or silently misbehaves:
// an empty result list evaluates (to 0 for categories with GT) instead of
// crashing; duplicate image, category or annotation ids, annotations of
// unknown images or categories, negative box sizes and non-finite numbers
// are errors; a missing "area" falls back to w*h and a missing "iscrowd" to
// 0.
package cocoeval
