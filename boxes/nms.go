package boxes

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// NMS performs greedy non-maximum suppression and returns the indices of
// the kept boxes, sorted by decreasing score, as torchvision.ops.nms on CPU
// (torchvision/csrc/ops/cpu/nms_kernel.cpp):
//
//   - boxes are visited by decreasing score; ties keep the lower index first
//     (the kernel's stable descending sort) and NaN scores come first, as
//     torch's sort orders them;
//   - a visited box that is not suppressed is kept and suppresses every
//     later box j with IoU > iouThreshold, where IoU is computed in float32
//     as inter / (area_i + area_j - inter) with area = (x2-x1)*(y2-y1) and
//     compared to the threshold in float64, like the kernel.
//
// The result equals the kernel's bit for bit. A box is suppressed exactly
// when some earlier kept box overlaps it by more than the threshold, so for
// iouThreshold >= 0, finite coordinates and more than 64 boxes each box is
// tested only against the kept boxes that can reach the threshold, found
// through a uniform grid: by centre distance (centreGrid, thresholds in
// [0.2, 1)) or by shared cells (grid, other thresholds). On 10k boxes this is
// tens of times faster than the kernel's all-pairs loop, which runs in the
// remaining cases (negative or NaN threshold, non-finite coordinates, few
// boxes).
func NMS(b, scores []float32, iouThreshold float64) ([]int, error) {
	n, err := Num(b, "boxes")
	if err != nil {
		return nil, err
	}
	if len(scores) != n {
		return nil, fmt.Errorf("boxes: NMS got %d boxes and %d scores, want the same number", n, len(scores))
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	var w nmsWork
	return w.run(b, scores, idx, iouThreshold), nil
}

// BatchedNMS performs NMS independently within each group (class or
// pyramid level) given by groups[i], and returns the kept indices sorted by
// decreasing score (ties: lower index first). It is torchvision's
// _batched_nms_vanilla (the path torchvision.ops.batched_nms takes on CPU
// for more than 1000 boxes); unlike the coordinate-offset trick it computes
// every IoU on the original coordinates. See BatchedNMSTorchvision for
// torchvision's size-dependent choice.
func BatchedNMS(b, scores []float32, groups []int, iouThreshold float64) ([]int, error) {
	n, err := Num(b, "boxes")
	if err != nil {
		return nil, err
	}
	if len(scores) != n || len(groups) != n {
		return nil, fmt.Errorf("boxes: BatchedNMS got %d boxes, %d scores and %d group ids, want the same number", n, len(scores), len(groups))
	}
	// Indices grouped by group id, ascending within a group.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(groups[i], groups[j]) })
	var w nmsWork
	keep := make([]int, 0, n)
	for start := 0; start < n; {
		end := start + 1
		for end < n && groups[order[end]] == groups[order[start]] {
			end++
		}
		keep = append(keep, w.run(b, scores, order[start:end], iouThreshold)...)
		start = end
	}
	sortByScore(keep, scores)
	return keep, nil
}

// BatchedNMSOffset is torchvision's _batched_nms_coordinate_trick: every box
// is shifted by group*(max coordinate + 1) in float32 so that boxes of
// different groups cannot overlap, then one NMS runs over all boxes. The
// shift rounds coordinates, so near the threshold it may keep a slightly
// different set than BatchedNMS.
func BatchedNMSOffset(b, scores []float32, groups []int, iouThreshold float64) ([]int, error) {
	n, err := Num(b, "boxes")
	if err != nil {
		return nil, err
	}
	if len(scores) != n || len(groups) != n {
		return nil, fmt.Errorf("boxes: BatchedNMSOffset got %d boxes, %d scores and %d group ids, want the same number", n, len(scores), len(groups))
	}
	if n == 0 {
		return []int{}, nil
	}
	maxC := b[0]
	for _, v := range b {
		if v > maxC || v != v {
			maxC = v
		}
	}
	step := maxC + 1
	shifted := make([]float32, len(b))
	for i := 0; i < n; i++ {
		off := float32(groups[i]) * step
		for k := 0; k < 4; k++ {
			shifted[4*i+k] = b[4*i+k] + off
		}
	}
	return NMS(shifted, scores, iouThreshold)
}

// BatchedNMSTorchvision chooses between BatchedNMSOffset and BatchedNMS as
// torchvision.ops.batched_nms does on CPU: the per-group loop when the boxes
// tensor has more than 4000 elements (more than 1000 boxes), the coordinate
// trick otherwise. Use it where bit parity with torchvision matters more
// than exact IoUs.
func BatchedNMSTorchvision(b, scores []float32, groups []int, iouThreshold float64) ([]int, error) {
	if len(b) > 4000 {
		return BatchedNMS(b, scores, groups, iouThreshold)
	}
	return BatchedNMSOffset(b, scores, groups, iouThreshold)
}

// scoreGreater orders a before b when a's score is larger, NaN counting as
// larger than any number (torch's descending sort).
func scoreCmp(sa, sb float32) int {
	na, nb := sa != sa, sb != sb
	switch {
	case na && nb:
		return 0
	case na:
		return -1
	case nb:
		return 1
	case sa > sb:
		return -1
	case sa < sb:
		return 1
	}
	return 0
}

// sortByScore sorts indices by decreasing score, ties by increasing index.
func sortByScore(idx []int, scores []float32) {
	slices.SortFunc(idx, func(i, j int) int {
		if c := scoreCmp(scores[i], scores[j]); c != 0 {
			return c
		}
		return i - j
	})
}

// nmsWork holds buffers reused across the groups of a batched NMS.
type nmsWork struct {
	order              []int
	x1, y1, x2, y2, ar []float32
	suppressed         []bool
	keptPos            []int32
	stamp              []int32
	cells              [][]int32
	big                []int32
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// run performs NMS over the boxes idx (original indices, ascending when the
// caller wants torchvision's tie rule) and returns kept original indices in
// decreasing score order.
func (w *nmsWork) run(b, scores []float32, idx []int, thr float64) []int {
	n := len(idx)
	w.order = grow(w.order, n)
	copy(w.order, idx)
	order := w.order
	slices.SortStableFunc(order, func(i, j int) int { return scoreCmp(scores[i], scores[j]) })
	w.x1, w.y1, w.x2, w.y2, w.ar = grow(w.x1, n), grow(w.y1, n), grow(w.x2, n), grow(w.y2, n), grow(w.ar, n)
	x1, y1, x2, y2, ar := w.x1, w.y1, w.x2, w.y2, w.ar
	finite := true
	for p, i := range order {
		x1[p], y1[p], x2[p], y2[p] = b[4*i], b[4*i+1], b[4*i+2], b[4*i+3]
		ar[p] = float32(x2[p]-x1[p]) * float32(y2[p]-y1[p])
		if !isFinite(x1[p]) || !isFinite(y1[p]) || !isFinite(x2[p]) || !isFinite(y2[p]) {
			finite = false
		}
	}
	var keptPos []int32
	switch {
	case forceAllPairs || !finite || !(thr >= 0) || n <= 64:
		keptPos = w.allPairs(thr)
	case thr >= centreGridMinThr && thr < 1 && w.centreGridSafe():
		keptPos = w.centreGrid(thr)
	default:
		keptPos = w.grid(thr)
	}
	keep := make([]int, len(keptPos))
	for k, p := range keptPos {
		keep[k] = order[p]
	}
	return keep
}

// overlapExceeds is the kernel's test for kept box p against box q.
func (w *nmsWork) overlapExceeds(p, q int32, thr float64) bool {
	xx1 := max(w.x1[p], w.x1[q])
	yy1 := max(w.y1[p], w.y1[q])
	xx2 := min(w.x2[p], w.x2[q])
	yy2 := min(w.y2[p], w.y2[q])
	iw := max(float32(0), float32(xx2-xx1))
	ih := max(float32(0), float32(yy2-yy1))
	inter := float32(iw * ih)
	ovr := inter / (float32(w.ar[p]+w.ar[q]) - inter)
	return float64(ovr) > thr
}

// allPairs is the kernel's loop over sorted positions.
func (w *nmsWork) allPairs(thr float64) []int32 {
	n := len(w.order)
	w.suppressed = grow(w.suppressed, n)
	sup := w.suppressed
	clear(sup)
	kept := w.keptPos[:0]
	for p := 0; p < n; p++ {
		if sup[p] {
			continue
		}
		kept = append(kept, int32(p))
		for q := p + 1; q < n; q++ {
			if !sup[q] && w.overlapExceeds(int32(p), int32(q), thr) {
				sup[q] = true
			}
		}
	}
	w.keptPos = kept
	return kept
}

// grid visits boxes by decreasing score and tests each against the kept
// boxes sharing a grid cell with it (or all kept boxes when that is
// cheaper). A box whose width or height is not positive cannot reach a
// positive intersection, so with thr >= 0 it is kept without tests, as the
// kernel would (its IoUs are 0 or NaN).
func (w *nmsWork) grid(thr float64) []int32 {
	n := len(w.order)
	x1, y1, x2, y2 := w.x1, w.y1, w.x2, w.y2
	// Extent and geometric-mean size of the boxes with positive extent.
	minX, minY := math.Inf(1), math.Inf(1)
	maxX, maxY := math.Inf(-1), math.Inf(-1)
	var sumLW, sumLH float64
	valid := 0
	for p := 0; p < n; p++ {
		if x2[p] > x1[p] && y2[p] > y1[p] {
			minX, maxX = min(minX, float64(x1[p])), max(maxX, float64(x2[p]))
			minY, maxY = min(minY, float64(y1[p])), max(maxY, float64(y2[p]))
			sumLW += math.Log(float64(x2[p]) - float64(x1[p]))
			sumLH += math.Log(float64(y2[p]) - float64(y1[p]))
			valid++
		}
	}
	kept := w.keptPos[:0]
	if valid == 0 {
		for p := 0; p < n; p++ {
			kept = append(kept, int32(p))
		}
		w.keptPos = kept
		return kept
	}
	cw := math.Exp(sumLW / float64(valid))
	ch := math.Exp(sumLH / float64(valid))
	const maxCells = 256
	gx := int(min(math.Ceil((maxX-minX)/cw), maxCells))
	gy := int(min(math.Ceil((maxY-minY)/ch), maxCells))
	gx, gy = max(gx, 1), max(gy, 1)
	invX := float64(gx) / math.Max(maxX-minX, math.SmallestNonzeroFloat64)
	invY := float64(gy) / math.Max(maxY-minY, math.SmallestNonzeroFloat64)
	cellX := func(v float32) int { return min(max(int((float64(v)-minX)*invX), 0), gx-1) }
	cellY := func(v float32) int { return min(max(int((float64(v)-minY)*invY), 0), gy-1) }

	if cap(w.cells) < gx*gy {
		w.cells = make([][]int32, gx*gy)
	}
	cells := w.cells[:gx*gy]
	for c := range cells {
		cells[c] = cells[c][:0]
	}
	w.stamp = grow(w.stamp, n)
	stamp := w.stamp
	for p := range stamp {
		stamp[p] = -1
	}
	// Kept boxes covering more than bigCells cells live in w.big and are
	// tested against every candidate instead of being registered cell by
	// cell.
	const bigCells = 16
	big := w.big[:0]
	for q := 0; q < n; q++ {
		if !(x2[q] > x1[q] && y2[q] > y1[q]) {
			kept = append(kept, int32(q))
			continue
		}
		cx1, cx2 := cellX(x1[q]), cellX(x2[q])
		cy1, cy2 := cellY(y1[q]), cellY(y2[q])
		nc := (cx2 - cx1 + 1) * (cy2 - cy1 + 1)
		suppressed := false
		if nc > len(kept) {
			for _, p := range kept {
				if w.overlapExceeds(p, int32(q), thr) {
					suppressed = true
					break
				}
			}
		} else {
			for _, p := range big {
				if w.overlapExceeds(p, int32(q), thr) {
					suppressed = true
					break
				}
			}
		cellLoop:
			for cy := cy1; cy <= cy2 && !suppressed; cy++ {
				for cx := cx1; cx <= cx2; cx++ {
					for _, p := range cells[cy*gx+cx] {
						if stamp[p] == int32(q) {
							continue
						}
						stamp[p] = int32(q)
						if w.overlapExceeds(p, int32(q), thr) {
							suppressed = true
							break cellLoop
						}
					}
				}
			}
		}
		if suppressed {
			continue
		}
		kept = append(kept, int32(q))
		if nc > bigCells {
			big = append(big, int32(q))
			continue
		}
		for cy := cy1; cy <= cy2; cy++ {
			for cx := cx1; cx <= cx2; cx++ {
				cells[cy*gx+cx] = append(cells[cy*gx+cx], int32(q))
			}
		}
	}
	w.big = big
	w.keptPos = kept
	return kept
}

// centreGridMinThr is the lowest threshold for which centreGrid is used
// (its search radius grows like 1/t box widths); thresholds >= 1 use grid.
const centreGridMinThr = 0.2

// centreGridSafe reports whether every box with positive width and height
// has coordinates of magnitude <= 1e12 and width and height >= 1e-6, so that
// the float32 IoU of any pair is within a relative 1e-5 of the exact IoU of
// the same coordinates (no overflow or underflow in areas), which
// centreGrid's bounds rely on.
func (w *nmsWork) centreGridSafe() bool {
	for p := range w.order {
		x1, y1, x2, y2 := w.x1[p], w.y1[p], w.x2[p], w.y2[p]
		if !(x2 > x1 && y2 > y1) {
			continue
		}
		if max(abs32(x1), abs32(y1), abs32(x2), abs32(y2)) > 1e12 || x2-x1 < 1e-6 || y2-y1 < 1e-6 {
			return false
		}
	}
	return true
}

func abs32(v float32) float32 { return float32(math.Abs(float64(v))) }

// centreGrid visits boxes by decreasing score and tests each candidate j
// only against kept boxes whose centre is near j's centre, using a bound
// that holds for every pair with IoU > t > 0:
//
//	inter > t*max(area_p, area_j) and ih <= min(h_p, h_j)
//	  =>  iw > t*max(w_p, w_j), and iw <= min(w_p, w_j) gives w_p < w_j/t
//	|cx_p - cx_j| <= (w_p+w_j)/2 - iw < (w_p+w_j)/2 - t*max(w_p, w_j)
//	  <= (1-t) * max(1, 1/(2t)) * w_j    (maximised over w_p in (0, w_j/t))
//
// (the same in y). The bound is applied with t lowered by a relative 1e-4,
// far more than the float32 rounding of the kernel's IoU (see
// centreGridSafe), so no pair the kernel would suppress is skipped; the
// test itself is the kernel's float32 IoU, so results are identical.
// Kept boxes are registered in the one grid cell holding their centre.
func (w *nmsWork) centreGrid(thr float64) []int32 {
	n := len(w.order)
	x1, y1, x2, y2 := w.x1, w.y1, w.x2, w.y2
	minX, minY := math.Inf(1), math.Inf(1)
	maxX, maxY := math.Inf(-1), math.Inf(-1)
	var sumLW, sumLH float64
	valid := 0
	for p := 0; p < n; p++ {
		if x2[p] > x1[p] && y2[p] > y1[p] {
			cx := (float64(x1[p]) + float64(x2[p])) / 2
			cy := (float64(y1[p]) + float64(y2[p])) / 2
			minX, maxX = min(minX, cx), max(maxX, cx)
			minY, maxY = min(minY, cy), max(maxY, cy)
			sumLW += math.Log(float64(x2[p]) - float64(x1[p]))
			sumLH += math.Log(float64(y2[p]) - float64(y1[p]))
			valid++
		}
	}
	kept := w.keptPos[:0]
	if valid == 0 {
		for p := 0; p < n; p++ {
			kept = append(kept, int32(p))
		}
		w.keptPos = kept
		return kept
	}
	tl := thr * (1 - 1e-4)
	ratio := (1 - tl) * max(1, 1/(2*tl)) * (1 + 1e-9) // search radius per unit of width
	cw := math.Exp(sumLW/float64(valid)) * min(max(ratio, 0.25), 1)
	ch := math.Exp(sumLH/float64(valid)) * min(max(ratio, 0.25), 1)
	maxCells := max(4*n, 64)
	gx := max(int(min(math.Ceil((maxX-minX)/cw), 1024)), 1)
	gy := max(int(min(math.Ceil((maxY-minY)/ch), 1024)), 1)
	for gx*gy > maxCells {
		gx, gy = max((gx+1)/2, 1), max((gy+1)/2, 1)
	}
	invX := float64(gx) / math.Max(maxX-minX, math.SmallestNonzeroFloat64)
	invY := float64(gy) / math.Max(maxY-minY, math.SmallestNonzeroFloat64)
	cellX := func(v float64) int { return min(max(int((v-minX)*invX), 0), gx-1) }
	cellY := func(v float64) int { return min(max(int((v-minY)*invY), 0), gy-1) }
	if cap(w.cells) < gx*gy {
		w.cells = make([][]int32, gx*gy)
	}
	cells := w.cells[:gx*gy]
	for c := range cells {
		cells[c] = cells[c][:0]
	}
	for q := 0; q < n; q++ {
		if !(x2[q] > x1[q] && y2[q] > y1[q]) {
			kept = append(kept, int32(q))
			continue
		}
		cx := (float64(x1[q]) + float64(x2[q])) / 2
		cy := (float64(y1[q]) + float64(y2[q])) / 2
		rx := (float64(x2[q]) - float64(x1[q])) * ratio
		ry := (float64(y2[q]) - float64(y1[q])) * ratio
		cx1, cx2 := cellX(cx-rx), cellX(cx+rx)
		cy1, cy2 := cellY(cy-ry), cellY(cy+ry)
		suppressed := false
		if (cx2-cx1+1)*(cy2-cy1+1) > len(kept) {
			for _, p := range kept {
				if w.overlapExceeds(p, int32(q), thr) {
					suppressed = true
					break
				}
			}
		} else {
		cellLoop:
			for cy := cy1; cy <= cy2; cy++ {
				for cx := cx1; cx <= cx2; cx++ {
					for _, p := range cells[cy*gx+cx] {
						if w.overlapExceeds(p, int32(q), thr) {
							suppressed = true
							break cellLoop
						}
					}
				}
			}
		}
		if !suppressed {
			kept = append(kept, int32(q))
			c := cellY(cy)*gx + cellX(cx)
			cells[c] = append(cells[c], int32(q))
		}
	}
	w.keptPos = kept
	return kept
}

// forceAllPairs makes run use the all-pairs loop (set by tests).
var forceAllPairs = false

func isFinite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
