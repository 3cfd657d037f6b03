package boxes

import (
	"fmt"
	"math"
)

// RPNWeights are the box-coder weights (wx, wy, ww, wh) torchvision's RPN
// uses.
var RPNWeights = [4]float32{1, 1, 1, 1}

// RoIWeights are the box-coder weights torchvision's RoI heads use.
var RoIWeights = [4]float32{10, 10, 5, 5}

// DefaultClip is torchvision's bbox_xform_clip, log(1000/16): decoded dw and
// dh are clamped from above to it before exp.
var DefaultClip = float32(math.Log(1000.0 / 16))

// BoxCoder encodes boxes as deltas (dx, dy, dw, dh) relative to reference
// boxes and decodes them back, as torchvision.models.detection._utils.BoxCoder
// (0.14): widths x2-x1 (no +1), centres x1 + 0.5*w, decoded corners
// centre -/+ 0.5*w (no -1), all in float32.
type BoxCoder struct {
	// Weights are (wx, wy, ww, wh).
	Weights [4]float32
	// Clip is the upper bound of dw/dh (after dividing by the weights)
	// before exp in Decode.
	Clip float32
}

// NewBoxCoder returns a BoxCoder with the given weights and DefaultClip.
func NewBoxCoder(weights [4]float32) BoxCoder {
	return BoxCoder{Weights: weights, Clip: DefaultClip}
}

// Encode returns, for every pair (reference[i], proposals[i]), the deltas
// that turn proposal i into reference box i (torchvision's encode_single /
// encode_boxes argument order: reference boxes are the targets, e.g. the
// matched ground truth, proposals the anchors or proposals):
//
//	dx = wx*(gt_cx-ex_cx)/ex_w   dy = wy*(gt_cy-ex_cy)/ex_h
//	dw = ww*log(gt_w/ex_w)       dh = wh*log(gt_h/ex_h)
//
// The result is flat, 4 values per pair.
func (c BoxCoder) Encode(reference, proposals []float32) ([]float32, error) {
	n, err := Num(reference, "reference boxes")
	if err != nil {
		return nil, err
	}
	m, err := Num(proposals, "proposals")
	if err != nil {
		return nil, err
	}
	if n != m {
		return nil, fmt.Errorf("boxes: Encode got %d reference boxes and %d proposals, want the same number", n, m)
	}
	wx, wy, ww, wh := c.Weights[0], c.Weights[1], c.Weights[2], c.Weights[3]
	out := make([]float32, 4*n)
	for i := 0; i < n; i++ {
		p := proposals[4*i : 4*i+4]
		r := reference[4*i : 4*i+4]
		exW := p[2] - p[0]
		exH := p[3] - p[1]
		exCX := p[0] + float32(0.5*exW)
		exCY := p[1] + float32(0.5*exH)
		gtW := r[2] - r[0]
		gtH := r[3] - r[1]
		gtCX := r[0] + float32(0.5*gtW)
		gtCY := r[1] + float32(0.5*gtH)
		out[4*i] = float32(wx*(gtCX-exCX)) / exW
		out[4*i+1] = float32(wy*(gtCY-exCY)) / exH
		out[4*i+2] = ww * log32(gtW/exW)
		out[4*i+3] = wh * log32(gtH/exH)
	}
	return out, nil
}

// Decode applies deltas to boxes, as torchvision's decode_single. deltas
// has n rows of 4k values (k = 1 for class-agnostic deltas, k classes for
// the class-specific deltas of the box predictor); row i is applied to box
// i. The result has the same layout as deltas (n x 4k):
//
//	dx, dy, dw, dh = d / (wx, wy, ww, wh); dw, dh = min(dw, Clip), min(dh, Clip)
//	cx = dx*w + ctr_x   cy = dy*h + ctr_y   pw = exp(dw)*w   ph = exp(dh)*h
//	box = (cx - 0.5*pw, cy - 0.5*ph, cx + 0.5*pw, cy + 0.5*ph)
func (c BoxCoder) Decode(deltas, boxes []float32) ([]float32, error) {
	n, err := Num(boxes, "reference boxes")
	if err != nil {
		return nil, err
	}
	if n == 0 {
		if len(deltas) != 0 {
			return nil, fmt.Errorf("boxes: Decode got %d deltas for 0 boxes", len(deltas))
		}
		return []float32{}, nil
	}
	if len(deltas)%(4*n) != 0 {
		return nil, fmt.Errorf("boxes: Decode got %d delta values for %d boxes, want a multiple of 4*%d", len(deltas), n, n)
	}
	row := len(deltas) / n
	wx, wy, ww, wh := c.Weights[0], c.Weights[1], c.Weights[2], c.Weights[3]
	out := make([]float32, len(deltas))
	for i := 0; i < n; i++ {
		b := boxes[4*i : 4*i+4]
		w := b[2] - b[0]
		h := b[3] - b[1]
		cx := b[0] + float32(0.5*w)
		cy := b[1] + float32(0.5*h)
		for k := i * row; k < (i+1)*row; k += 4 {
			dx := deltas[k] / wx
			dy := deltas[k+1] / wy
			dw := min32(deltas[k+2]/ww, c.Clip)
			dh := min32(deltas[k+3]/wh, c.Clip)
			pcx := float32(dx*w) + cx
			pcy := float32(dy*h) + cy
			pw := exp32(dw) * w
			ph := exp32(dh) * h
			hw := float32(0.5 * pw)
			hh := float32(0.5 * ph)
			out[k] = pcx - hw
			out[k+1] = pcy - hh
			out[k+2] = pcx + hw
			out[k+3] = pcy + hh
		}
	}
	return out, nil
}

// min32 is torch.clamp(v, max=hi): NaN propagates.
func min32(v, hi float32) float32 {
	if v > hi {
		return hi
	}
	return v
}

func log32(v float32) float32 { return float32(math.Log(float64(v))) }
func exp32(v float32) float32 { return float32(math.Exp(float64(v))) }
