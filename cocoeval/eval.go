package cocoeval

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Per detection, per area range and IoU threshold: what accumulate() makes of
// it (pycocotools' tps / fps / neither).
const (
	stFP  uint8 = 0
	stTP  uint8 = 1
	stIgn uint8 = 2
)

// eps is numpy.spacing(1), added to the precision denominator.
const eps = 2.220446049250313e-16

// item is an annotation or detection index with its image position.
type item struct {
	img int32 // position of the image in Params.ImgIDs
	idx int32 // index into Dataset.Annotations or the detections slice
}

type evaluator struct {
	gt    *Dataset
	dets  []Detection
	p     Params
	T, R  int
	K, A  int
	M     int
	gtBy  [][]item // per category, sorted by image, then file order
	dtBy  [][]item
	prec  []float64 // [T][R][K][A][M]
	rec   []float64 // [T][K][A][M]
	npig  []int     // [K][A]: non-ignored GT count
	iouTh []float64 // min(t, 1-1e-10)
}

// workspace holds one worker's buffers, reused across categories.
type workspace struct {
	// per category, one entry per kept detection (image order, then score order)
	score  []float64
	rank   []int32 // position within its image after sorting and truncation
	status []uint8 // [n][A][T]
	hasE   bool    // some image has GT or detections for this category

	dord    []int32
	iou     []float64
	gtIg    []bool
	order   []int32
	matched []bool
	sorted  []int32
	sel     []int32
	rc, pr  []float64
}

// Evaluate reproduces pycocotools COCOeval (iouType "bbox", useCats 1):
// evaluate(), accumulate() and summarize() over the GT's images and
// categories (or Params.ImgIDs / CatIDs). dets are the detections in results
// order (ids 1..N as loadRes assigns them); every image id must be a GT image.
// Detections of categories outside the evaluated set are ignored, as are
// detections of images outside Params.ImgIDs. The work is spread over
// Params.Workers goroutines, one category at a time; the result does not
// depend on the number of workers.
func Evaluate(gt *Dataset, dets []Detection, p Params) (*Result, error) {
	if gt == nil {
		return nil, errors.New("cocoeval: nil ground truth")
	}
	q, err := p.normalize(gt)
	if err != nil {
		return nil, err
	}
	if err := checkDetections(gt, dets); err != nil {
		return nil, err
	}
	e := &evaluator{gt: gt, dets: dets, p: q, T: len(q.IouThrs), R: len(q.RecThrs),
		K: len(q.CatIDs), A: len(q.AreaRng), M: len(q.MaxDets)}
	e.iouTh = make([]float64, e.T)
	one, tiny := 1.0, 1e-10
	for i, t := range q.IouThrs {
		e.iouTh[i] = min(t, one-tiny)
	}
	warnings := e.group()

	e.prec = make([]float64, e.T*e.R*e.K*e.A*e.M)
	e.rec = make([]float64, e.T*e.K*e.A*e.M)
	for i := range e.prec {
		e.prec[i] = -1
	}
	for i := range e.rec {
		e.rec[i] = -1
	}
	e.npig = make([]int, e.K*e.A)

	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(q.Workers, max(e.K, 1)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := &workspace{}
			for {
				k := int(next.Add(1) - 1)
				if k >= e.K {
					return
				}
				e.category(k, ws)
			}
		}()
	}
	wg.Wait()
	return e.result(warnings), nil
}

// group buckets GT annotations and detections by category, each bucket in
// (image position, file order) order, with two stable counting sorts.
func (e *evaluator) group() []string {
	imgPos := make(map[int64]int32, len(e.p.ImgIDs))
	for i, id := range e.p.ImgIDs {
		imgPos[id] = int32(i)
	}
	catPos := make(map[int64]int32, e.K)
	for k, id := range e.p.CatIDs {
		catPos[id] = int32(k)
	}
	var warnings []string
	type keyed struct {
		item
		cat int32
	}
	bucket := func(n int, key func(i int) (img, cat int32, ok bool)) [][]item {
		list := make([]keyed, 0, n)
		for i := 0; i < n; i++ {
			img, cat, ok := key(i)
			if ok {
				list = append(list, keyed{item{img, int32(i)}, cat})
			}
		}
		// stable counting sort by image, then by category
		tmp := make([]keyed, len(list))
		countSort(list, tmp, len(e.p.ImgIDs), func(x keyed) int { return int(x.img) })
		countSort(tmp, list, e.K, func(x keyed) int { return int(x.cat) })
		out := make([][]item, e.K)
		flat := make([]item, len(list))
		for i, x := range list {
			flat[i] = x.item
		}
		start := 0
		for start < len(list) {
			end := start
			for end < len(list) && list[end].cat == list[start].cat {
				end++
			}
			out[list[start].cat] = flat[start:end:end]
			start = end
		}
		return out
	}
	zeroID := 0
	e.gtBy = bucket(len(e.gt.Annotations), func(i int) (int32, int32, bool) {
		a := &e.gt.Annotations[i]
		img, ok1 := imgPos[a.ImageID]
		cat, ok2 := catPos[a.CategoryID]
		if ok1 && ok2 && a.ID == 0 {
			zeroID++
		}
		return img, cat, ok1 && ok2
	})
	otherCat := 0
	e.dtBy = bucket(len(e.dets), func(i int) (int32, int32, bool) {
		d := &e.dets[i]
		img, ok1 := imgPos[d.ImageID]
		cat, ok2 := catPos[d.CategoryID]
		if !ok2 {
			otherCat++
		}
		return img, cat, ok1 && ok2
	})
	if zeroID > 0 {
		warnings = append(warnings, "a ground-truth annotation has id 0: as in pycocotools, a detection matched to it counts as unmatched")
	}
	if otherCat > 0 {
		warnings = append(warnings, fmt.Sprintf("%d detections have a category outside the evaluated categories and were ignored", otherCat))
	}
	return warnings
}

func countSort[T any](src, dst []T, n int, key func(T) int) {
	count := make([]int, n+1)
	for _, x := range src {
		count[key(x)+1]++
	}
	for i := 1; i <= n; i++ {
		count[i] += count[i-1]
	}
	for _, x := range src {
		k := key(x)
		dst[count[k]] = x
		count[k]++
	}
}

// category evaluates every image of category k (evaluateImg for all area
// ranges) and then accumulates the category's precision and recall.
func (e *evaluator) category(k int, ws *workspace) {
	ws.score = ws.score[:0]
	ws.rank = ws.rank[:0]
	ws.status = ws.status[:0]
	ws.hasE = false
	gts, dts := e.gtBy[k], e.dtBy[k]
	i, j := 0, 0
	for i < len(gts) || j < len(dts) {
		img := int32(1<<31 - 1)
		if i < len(gts) {
			img = gts[i].img
		}
		if j < len(dts) && dts[j].img < img {
			img = dts[j].img
		}
		i0, j0 := i, j
		for i < len(gts) && gts[i].img == img {
			i++
		}
		for j < len(dts) && dts[j].img == img {
			j++
		}
		e.image(k, ws, gts[i0:i], dts[j0:j])
	}
	e.accumulate(k, ws)
}

// image is pycocotools' computeIoU + evaluateImg for one image and category,
// for every area range at once.
func (e *evaluator) image(k int, ws *workspace, gts, dts []item) {
	ws.hasE = true
	T, A := e.T, e.A
	// detections: stable sort by descending score, keep maxDets[-1]
	ws.dord = ws.dord[:0]
	for _, d := range dts {
		ws.dord = append(ws.dord, d.idx)
	}
	slices.SortStableFunc(ws.dord, func(a, b int32) int {
		return cmp.Compare(e.dets[b].Score, e.dets[a].Score)
	})
	if maxDet := e.p.MaxDets[e.M-1]; len(ws.dord) > maxDet {
		ws.dord = ws.dord[:maxDet]
	}
	D, G := len(ws.dord), len(gts)
	// IoU matrix [D][G], GT in file order (maskApi.c bbIou)
	ws.iou = grow(ws.iou, D*G)
	for di, dIdx := range ws.dord {
		db := &e.dets[dIdx].BBox
		da := float64(db[2] * db[3])
		for gi, g := range gts {
			a := &e.gt.Annotations[g.idx]
			gb := &a.BBox
			ws.iou[di*G+gi] = 0
			w := min(db[2]+db[0], gb[2]+gb[0]) - max(db[0], gb[0])
			if w <= 0 {
				continue
			}
			h := min(db[3]+db[1], gb[3]+gb[1]) - max(db[1], gb[1])
			if h <= 0 {
				continue
			}
			inter := float64(w * h)
			var u float64
			if a.IsCrowd {
				u = da
			} else {
				ga := float64(gb[2] * gb[3])
				u = da + ga - inter
			}
			ws.iou[di*G+gi] = inter / u
		}
	}
	base := len(ws.score)
	for di, dIdx := range ws.dord {
		ws.score = append(ws.score, e.dets[dIdx].Score)
		ws.rank = append(ws.rank, int32(di))
	}
	ws.status = slices.Grow(ws.status, D*A*T)[:(base+D)*A*T]
	ws.gtIg = grow(ws.gtIg, G)
	ws.order = grow(ws.order, G)
	ws.matched = grow(ws.matched, G)

	for ai, rng := range e.p.AreaRng {
		// GT ignore flags; order with ignored GT last (stable)
		n := 0
		for gi, g := range gts {
			a := &e.gt.Annotations[g.idx]
			if !(a.IsCrowd || a.Area < rng[0] || a.Area > rng[1]) {
				ws.order[n] = int32(gi)
				n++
			}
		}
		e.npig[k*A+ai] += n
		m := n
		for gi, g := range gts {
			a := &e.gt.Annotations[g.idx]
			if a.IsCrowd || a.Area < rng[0] || a.Area > rng[1] {
				ws.order[m] = int32(gi)
				m++
			}
		}
		for pos := range G {
			ws.gtIg[pos] = pos >= n
		}
		for ti, thr := range e.iouTh {
			clear(ws.matched[:G])
			for di, dIdx := range ws.dord {
				st := stFP
				best := -1
				if G > 0 {
					iou := thr
					row := ws.iou[di*G : di*G+G]
					for pos := 0; pos < G; pos++ {
						gi := ws.order[pos]
						if ws.matched[pos] && !e.gt.Annotations[gts[gi].idx].IsCrowd {
							continue
						}
						if best > -1 && !ws.gtIg[best] && ws.gtIg[pos] {
							break
						}
						if row[gi] < iou {
							continue
						}
						iou = row[gi]
						best = pos
					}
				}
				matchedID := false // pycocotools: dtMatches holds the GT id, 0 = none
				dtIg := false
				if best >= 0 {
					ws.matched[best] = true
					dtIg = ws.gtIg[best]
					matchedID = e.gt.Annotations[gts[ws.order[best]].idx].ID != 0
				}
				if !matchedID {
					db := &e.dets[dIdx].BBox
					area := float64(db[2] * db[3])
					if area < rng[0] || area > rng[1] {
						dtIg = true
					}
				}
				switch {
				case dtIg:
					st = stIgn
				case matchedID:
					st = stTP
				}
				ws.status[((base+di)*A+ai)*T+ti] = st
			}
		}
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/2)
	}
	return s[:n]
}

// accumulate is pycocotools' accumulate() for category k.
func (e *evaluator) accumulate(k int, ws *workspace) {
	if !ws.hasE {
		return // no image has GT or detections: precision and recall stay -1
	}
	T, R, K, A, M := e.T, e.R, e.K, e.A, e.M
	n := len(ws.score)
	// stable sort of the concatenation (image order, then per-image score
	// order) by descending score; a maxDet subset keeps this relative order.
	ws.sorted = grow(ws.sorted, n)
	for i := range ws.sorted {
		ws.sorted[i] = int32(i)
	}
	slices.SortStableFunc(ws.sorted, func(a, b int32) int {
		return cmp.Compare(ws.score[b], ws.score[a])
	})
	ws.rc = grow(ws.rc, n)
	ws.pr = grow(ws.pr, n)
	for mi, maxDet := range e.p.MaxDets {
		ws.sel = ws.sel[:0]
		for _, idx := range ws.sorted {
			if int(ws.rank[idx]) < maxDet {
				ws.sel = append(ws.sel, idx)
			}
		}
		nd := len(ws.sel)
		for ai := range A {
			npig := e.npig[k*A+ai]
			if npig == 0 {
				continue
			}
			fnpig := float64(npig)
			for ti := range T {
				tp, fp := 0, 0
				rc, pr := ws.rc[:nd], ws.pr[:nd]
				for i, idx := range ws.sel {
					switch ws.status[(int(idx)*A+ai)*T+ti] {
					case stTP:
						tp++
					case stFP:
						fp++
					}
					ftp, ffp := float64(tp), float64(fp)
					rc[i] = ftp / fnpig
					pr[i] = ftp / (ffp + ftp + eps)
				}
				recall := 0.0
				if nd > 0 {
					recall = rc[nd-1]
				}
				e.rec[((ti*K+k)*A+ai)*M+mi] = recall
				for i := nd - 1; i > 0; i-- {
					if pr[i] > pr[i-1] {
						pr[i-1] = pr[i]
					}
				}
				for ri, thr := range e.p.RecThrs {
					// numpy.searchsorted(rc, thr, side="left")
					pi := sort.Search(nd, func(i int) bool { return rc[i] >= thr })
					if pi >= nd {
						// pycocotools' IndexError ends the filling; the rest stays 0
						for r2 := ri; r2 < R; r2++ {
							e.prec[(((ti*R+r2)*K+k)*A+ai)*M+mi] = 0
						}
						break
					}
					e.prec[(((ti*R+ri)*K+k)*A+ai)*M+mi] = pr[pi]
				}
			}
		}
	}
}
