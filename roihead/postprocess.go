package roihead

import (
	"fmt"
	"math"

	"github.com/skd-go/skd/boxes"
)

// Detections are one image's final boxes (4 each), scores and class labels
// (1..NumClasses-1), best first.
type Detections struct {
	Boxes  []float32
	Scores []float32
	Labels []int
}

// Postprocess turns the predictor's outputs for one image's proposals
// (logits K x C, deltas K x 4C) into detections, as torchvision's
// RoIHeads.postprocess_detections: softmax, class-specific decode, clip to
// the image, background dropped, score > ScoreThresh, small boxes removed,
// NMS per class, the best DetectionsPerImg kept.
func Postprocess(logits, deltas, proposals []float32, imageH, imageW int, cfg Config) (*Detections, error) {
	c := cfg.NumClasses
	k := len(proposals) / 4
	if len(logits) != k*c || len(deltas) != 4*k*c {
		return nil, fmt.Errorf("roi_heads: %d proposals but %d logits and %d deltas for %d classes", k, len(logits), len(deltas), c)
	}
	coder := boxes.NewBoxCoder(cfg.BBoxRegWeights)
	pred, err := coder.Decode(deltas, proposals) // K x 4C
	if err != nil {
		return nil, err
	}
	if err := boxes.ClipToImage(pred, float32(imageH), float32(imageW)); err != nil {
		return nil, err
	}
	scores := softmaxRows(logits, k, c)
	var cb, cs []float32
	var cl []int
	for i := 0; i < k; i++ {
		for j := 1; j < c; j++ {
			s := scores[i*c+j]
			if s > cfg.ScoreThresh {
				cb = append(cb, pred[(i*c+j)*4:(i*c+j)*4+4]...)
				cs = append(cs, s)
				cl = append(cl, j)
			}
		}
	}
	keep, err := boxes.RemoveSmall(cb, cfg.MinSize)
	if err != nil {
		return nil, err
	}
	kb, ks, kl := make([]float32, 0, 4*len(keep)), make([]float32, 0, len(keep)), make([]int, 0, len(keep))
	for _, i := range keep {
		kb = append(kb, cb[4*i:4*i+4]...)
		ks = append(ks, cs[i])
		kl = append(kl, cl[i])
	}
	nms, err := boxes.BatchedNMSTorchvision(kb, ks, kl, cfg.NMSThresh)
	if err != nil {
		return nil, err
	}
	if len(nms) > cfg.DetectionsPerImg {
		nms = nms[:cfg.DetectionsPerImg]
	}
	d := &Detections{}
	for _, i := range nms {
		d.Boxes = append(d.Boxes, kb[4*i:4*i+4]...)
		d.Scores = append(d.Scores, ks[i])
		d.Labels = append(d.Labels, kl[i])
	}
	return d, nil
}

// softmaxRows is a row-wise softmax in float32 with max subtraction.
func softmaxRows(x []float32, rows, cols int) []float32 {
	out := make([]float32, len(x))
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		m := float32(math.Inf(-1))
		for _, v := range row {
			if v > m {
				m = v
			}
		}
		var sum float64
		for j, v := range row {
			e := math.Exp(float64(v - m))
			out[r*cols+j] = float32(e)
			sum += e
		}
		for j := range row {
			out[r*cols+j] = float32(float64(out[r*cols+j]) / sum)
		}
	}
	return out
}
