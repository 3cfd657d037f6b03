package boxes

import "fmt"

// Num returns the number of boxes in the flat slice b (len(b)/4), or an
// error when len(b) is not a multiple of 4. name is used in the message.
func Num(b []float32, name string) (int, error) {
	if len(b)%4 != 0 {
		return 0, fmt.Errorf("boxes: %s has length %d, not a multiple of 4 (x1,y1,x2,y2 per box)", name, len(b))
	}
	return len(b) / 4, nil
}

// Area returns (x2-x1)*(y2-y1) for every box, as torchvision.ops.box_area
// (no +1, no clamping: an inverted box has a negative or zero area).
func Area(b []float32) ([]float32, error) {
	n, err := Num(b, "boxes")
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(b[4*i+2]-b[4*i]) * float32(b[4*i+3]-b[4*i+1])
	}
	return out, nil
}

// IoU returns the n x m matrix (row-major, IoU(a_i, b_j) at index i*m+j) of
// intersection over union between the n boxes of a and the m boxes of b, as
// torchvision.ops.box_iou in float32: inter = clamp(min(x2)-max(x1), 0) *
// clamp(min(y2)-max(y1), 0), union = area_a + area_b - inter, iou =
// inter/union (0/0 gives NaN, as in torchvision).
func IoU(a, b []float32) ([]float32, error) {
	n, err := Num(a, "first box set")
	if err != nil {
		return nil, err
	}
	m, err := Num(b, "second box set")
	if err != nil {
		return nil, err
	}
	out := make([]float32, n*m)
	iouInto(out, a, b, n, m)
	return out, nil
}

// IoUInto is IoU writing into dst, which must have length n*m. It lets a
// caller reuse one buffer across images.
func IoUInto(dst, a, b []float32) error {
	n, err := Num(a, "first box set")
	if err != nil {
		return err
	}
	m, err := Num(b, "second box set")
	if err != nil {
		return err
	}
	if len(dst) != n*m {
		return fmt.Errorf("boxes: IoUInto destination has length %d, want %d x %d = %d", len(dst), n, m, n*m)
	}
	iouInto(dst, a, b, n, m)
	return nil
}

func iouInto(dst, a, b []float32, n, m int) {
	areaB := make([]float32, m)
	for j := range areaB {
		areaB[j] = float32(b[4*j+2]-b[4*j]) * float32(b[4*j+3]-b[4*j+1])
	}
	for i := 0; i < n; i++ {
		ax1, ay1, ax2, ay2 := a[4*i], a[4*i+1], a[4*i+2], a[4*i+3]
		areaA := float32(ax2-ax1) * float32(ay2-ay1)
		row := dst[i*m : (i+1)*m]
		for j := range row {
			w := float32(min(ax2, b[4*j+2]) - max(ax1, b[4*j]))
			h := float32(min(ay2, b[4*j+3]) - max(ay1, b[4*j+1]))
			w = max(w, 0)
			h = max(h, 0)
			inter := float32(w * h)
			union := float32(areaA+areaB[j]) - inter
			row[j] = inter / union
		}
	}
}

// ClipToImage clamps, in place, x coordinates to [0, width] and y
// coordinates to [0, height], as torchvision.ops.clip_boxes_to_image.
func ClipToImage(b []float32, height, width float32) error {
	if _, err := Num(b, "boxes"); err != nil {
		return err
	}
	if !(height >= 0) || !(width >= 0) {
		return fmt.Errorf("boxes: ClipToImage needs a non-negative image size, got height %v width %v", height, width)
	}
	for i := 0; i < len(b); i += 2 {
		b[i] = clamp(b[i], width)
		b[i+1] = clamp(b[i+1], height)
	}
	return nil
}

// clamp follows torch.clamp(v, 0, hi): NaN stays NaN.
func clamp(v, hi float32) float32 {
	if v < 0 {
		return 0
	}
	if v > hi {
		return hi
	}
	return v
}

// RemoveSmall returns, in increasing order, the indices of the boxes whose
// width and height are both >= minSize, as torchvision.ops.remove_small_boxes
// (widths x2-x1, no +1).
func RemoveSmall(b []float32, minSize float32) ([]int, error) {
	n, err := Num(b, "boxes")
	if err != nil {
		return nil, err
	}
	keep := make([]int, 0, n)
	for i := 0; i < n; i++ {
		w := b[4*i+2] - b[4*i]
		h := b[4*i+3] - b[4*i+1]
		if w >= minSize && h >= minSize {
			keep = append(keep, i)
		}
	}
	return keep, nil
}

// Select returns the boxes of b at the given indices, in that order, as a
// new flat slice. An index out of range is an error.
func Select(b []float32, idx []int) ([]float32, error) {
	n, err := Num(b, "boxes")
	if err != nil {
		return nil, err
	}
	out := make([]float32, 4*len(idx))
	for k, i := range idx {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("boxes: Select index %d out of range [0, %d)", i, n)
		}
		copy(out[4*k:4*k+4], b[4*i:4*i+4])
	}
	return out, nil
}
