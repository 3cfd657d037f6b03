package cocoeval

import (
	"fmt"
	"strings"
)

// StatNames are the names of Result.Stats, in pycocotools' order.
var StatNames = [12]string{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}

// ClassAP is the per-category result at area range 0 ("all") and the largest
// maxDets (100), as detectron2 reports it. A category without any
// non-ignored GT in the evaluated images has AP, AP50 and AP75 = -1
// (pycocotools' "absent" marker; such categories are left out of the means).
type ClassAP struct {
	ID   int64
	Name string
	// AP is the mean precision over IoU .50:.95 and the recall points.
	AP float64
	// AP50 and AP75 are at IoU .50 and .75 (-1 if not among IouThrs).
	AP50, AP75 float64
	// NumGT counts the GT that are not ignored (not crowd, area in range 0).
	NumGT int
}

// Result holds what pycocotools' accumulate() and summarize() produce.
type Result struct {
	// Params are the parameters actually used (ids filled in and sorted).
	Params Params
	// Categories are the evaluated categories, in Params.CatIDs order.
	Categories []Category
	// Stats are the 12 summary numbers, named by StatNames; -1 where no
	// entry had GT.
	Stats [12]float64
	// PerClass has one entry per evaluated category, in Params.CatIDs order.
	PerClass []ClassAP
	// Precision is eval['precision'], shape [T][R][K][A][M] row-major;
	// -1 where a category has no GT in an area range. See PrecisionAt.
	Precision []float64
	// Recall is eval['recall'], shape [T][K][A][M]. See RecallAt.
	Recall []float64
	// Warnings lists input peculiarities that did not stop the evaluation.
	Warnings []string
}

// PrecisionAt returns precision[t, r, k, a, m] (indices into IouThrs,
// RecThrs, categories, AreaRng and MaxDets).
func (r *Result) PrecisionAt(t, ri, k, a, m int) float64 {
	R, K, A, M := len(r.Params.RecThrs), len(r.Params.CatIDs), len(r.Params.AreaRng), len(r.Params.MaxDets)
	return r.Precision[(((t*R+ri)*K+k)*A+a)*M+m]
}

// RecallAt returns recall[t, k, a, m].
func (r *Result) RecallAt(t, k, a, m int) float64 {
	K, A, M := len(r.Params.CatIDs), len(r.Params.AreaRng), len(r.Params.MaxDets)
	return r.Recall[((t*K+k)*A+a)*M+m]
}

// Metrics returns the 12 stats keyed by StatNames.
func (r *Result) Metrics() map[string]float64 {
	m := make(map[string]float64, len(StatNames))
	for i, n := range StatNames {
		m[n] = r.Stats[i]
	}
	return m
}

func (e *evaluator) result(warnings []string) *Result {
	res := &Result{Params: e.p, Precision: e.prec, Recall: e.rec, Warnings: warnings}
	res.Categories = make([]Category, e.K)
	for k, id := range e.p.CatIDs {
		res.Categories[k], _ = e.gt.CategoryByID(id)
	}
	for i, s := range res.summarySpec() {
		res.Stats[i] = res.summarize(s.ap, s.iouThr, s.area, s.maxDets)
	}
	res.PerClass = make([]ClassAP, e.K)
	for k, c := range res.Categories {
		res.PerClass[k] = ClassAP{ID: c.ID, Name: c.Name,
			AP:    res.classAP(k, nil),
			AP50:  res.classAP(k, ptr(.5)),
			AP75:  res.classAP(k, ptr(.75)),
			NumGT: e.npig[k*e.A]}
	}
	return res
}

func ptr(v float64) *float64 { return &v }

type summaryLine struct {
	ap      bool
	iouThr  *float64
	area    string
	maxDets int
}

// summarySpec is _summarizeDets: which (ap, iouThr, area, maxDets) each of
// the 12 stats uses. The first uses maxDets=100 literally, the others
// Params.MaxDets[0..2], as in pycocotools.
func (r *Result) summarySpec() [12]summaryLine {
	md := r.Params.MaxDets
	return [12]summaryLine{
		{true, nil, "all", 100},
		{true, ptr(.5), "all", md[2]},
		{true, ptr(.75), "all", md[2]},
		{true, nil, "small", md[2]},
		{true, nil, "medium", md[2]},
		{true, nil, "large", md[2]},
		{false, nil, "all", md[0]},
		{false, nil, "all", md[1]},
		{false, nil, "all", md[2]},
		{false, nil, "small", md[2]},
		{false, nil, "medium", md[2]},
		{false, nil, "large", md[2]},
	}
}

// selectIdx returns the indices i with keep(i), like numpy boolean selection.
func selectIdx(n int, keep func(int) bool) []int {
	var out []int
	for i := range n {
		if keep(i) {
			out = append(out, i)
		}
	}
	return out
}

// summarize is _summarize: the mean of the selected entries > -1 (in numpy's
// C order and summation order), -1 when there is none.
func (r *Result) summarize(ap bool, iouThr *float64, area string, maxDets int) float64 {
	p := r.Params
	T, R, K := len(p.IouThrs), len(p.RecThrs), len(p.CatIDs)
	tind := selectIdx(T, func(i int) bool { return iouThr == nil || p.IouThrs[i] == *iouThr })
	aind := selectIdx(len(p.AreaRngLbl), func(i int) bool { return p.AreaRngLbl[i] == area })
	mind := selectIdx(len(p.MaxDets), func(i int) bool { return p.MaxDets[i] == maxDets })
	var vals []float64
	if ap {
		for _, t := range tind {
			for ri := range R {
				for k := range K {
					for _, a := range aind {
						for _, m := range mind {
							if v := r.PrecisionAt(t, ri, k, a, m); v > -1 {
								vals = append(vals, v)
							}
						}
					}
				}
			}
		}
	} else {
		for _, t := range tind {
			for k := range K {
				for _, a := range aind {
					for _, m := range mind {
						if v := r.RecallAt(t, k, a, m); v > -1 {
							vals = append(vals, v)
						}
					}
				}
			}
		}
	}
	if len(vals) == 0 {
		return -1
	}
	return npMean(vals)
}

// classAP is the mean of precision[t, :, k, 0, M-1] over entries > -1, for
// all IoU thresholds (iouThr nil) or the one equal to *iouThr; -1 if none.
func (r *Result) classAP(k int, iouThr *float64) float64 {
	p := r.Params
	M := len(p.MaxDets)
	var vals []float64
	for t := range p.IouThrs {
		if iouThr != nil && p.IouThrs[t] != *iouThr {
			continue
		}
		for ri := range p.RecThrs {
			if v := r.PrecisionAt(t, ri, k, 0, M-1); v > -1 {
				vals = append(vals, v)
			}
		}
	}
	if len(vals) == 0 {
		return -1
	}
	return npMean(vals)
}

// npMean is numpy.mean of a contiguous float64 array: numpy sums with
// pairwise summation in blocks of 8192 (its buffer size), starting from 0.
func npMean(v []float64) float64 { return npSum(v) / float64(len(v)) }

// npSum is numpy.add.reduce of a contiguous float64 array.
func npSum(v []float64) float64 {
	s := 0.0
	for i := 0; i < len(v); i += 8192 {
		s += pairwiseSum(v[i:min(i+8192, len(v))])
	}
	return s
}

// pairwiseSum is numpy's pairwise_sum for doubles (8-way unrolled blocks of
// up to 128 elements, recursive halving above).
func pairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		res := 0.0
		for _, x := range a {
			res += x
		}
		return res
	case n <= 128:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := range 8 {
				r[j] += a[i+j]
			}
		}
		res := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			res += a[i]
		}
		return res
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(a[:n2]) + pairwiseSum(a[n2:])
	}
}

// Summary returns pycocotools' 12 summary lines, byte for byte.
func (r *Result) Summary() string {
	var b strings.Builder
	p := r.Params
	for i, s := range r.summarySpec() {
		title, typ := "Average Precision", "(AP)"
		if !s.ap {
			title, typ = "Average Recall", "(AR)"
		}
		iou := fmt.Sprintf("%0.2f:%0.2f", p.IouThrs[0], p.IouThrs[len(p.IouThrs)-1])
		if s.iouThr != nil {
			iou = fmt.Sprintf("%0.2f", *s.iouThr)
		}
		fmt.Fprintf(&b, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
			title, typ, iou, s.area, s.maxDets, r.Stats[i])
	}
	return b.String()
}

// PerClassTable returns a table of per-category AP, AP50, AP75 and GT count,
// in category id order. Categories without GT show "n/a" (AP = -1).
func (r *Result) PerClassTable() string {
	w := len("category")
	for _, c := range r.PerClass {
		w = max(w, len(c.Name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s | %6s | %6s | %6s | %6s\n", w, "category", "AP", "AP50", "AP75", "#GT")
	fmt.Fprintf(&b, "%s-|-%s-|-%s-|-%s-|-%s\n", strings.Repeat("-", w), strings.Repeat("-", 6),
		strings.Repeat("-", 6), strings.Repeat("-", 6), strings.Repeat("-", 6))
	f := func(v float64) string {
		if v == -1 {
			return "n/a"
		}
		return fmt.Sprintf("%0.3f", v)
	}
	absent := false
	for _, c := range r.PerClass {
		if c.AP == -1 {
			absent = true
		}
		fmt.Fprintf(&b, "%-*s | %6s | %6s | %6s | %6d\n", w, c.Name, f(c.AP), f(c.AP50), f(c.AP75), c.NumGT)
	}
	if absent {
		b.WriteString("n/a: no ground truth for the category in the evaluated images (AP -1, left out of the means)\n")
	}
	return b.String()
}
