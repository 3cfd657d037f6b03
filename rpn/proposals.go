package rpn

import (
	"fmt"
	"math"
	"sort"

	"github.com/skd-go/skd/boxes"
)

// Level is one pyramid level's feature size.
type Level struct{ H, W int }

// HeadOutputs are the RPN head's outputs for a batch as flat NCHW data:
// Obj[l] is N x A x H x W, Deltas[l] is N x 4A x H x W.
type HeadOutputs struct {
	N, A   int
	Levels []Level
	Obj    [][]float32
	Deltas [][]float32
}

// Validate checks the sizes.
func (o *HeadOutputs) Validate() error {
	if len(o.Obj) != len(o.Levels) || len(o.Deltas) != len(o.Levels) {
		return fmt.Errorf("rpn: %d levels but %d objectness and %d delta maps", len(o.Levels), len(o.Obj), len(o.Deltas))
	}
	for l, lv := range o.Levels {
		if len(o.Obj[l]) != o.N*o.A*lv.H*lv.W || len(o.Deltas[l]) != 4*o.N*o.A*lv.H*lv.W {
			return fmt.Errorf("rpn: level %d: sizes %d/%d do not fit N=%d A=%d %dx%d", l, len(o.Obj[l]), len(o.Deltas[l]), o.N, o.A, lv.H, lv.W)
		}
	}
	return nil
}

// ObjIndex returns the flat index into Obj[l] of anchor i of image n, where
// anchors are ordered location-major then anchor (i = (h*W + w)*A + a).
func (o *HeadOutputs) ObjIndex(l, n, i int) int {
	lv := o.Levels[l]
	a, hw := i%o.A, i/o.A
	return ((n*o.A+a)*lv.H+hw/lv.W)*lv.W + hw%lv.W
}

// DeltaIndex returns the flat index into Deltas[l] of coordinate 0 of
// anchor i of image n; the 4 coordinates are H*W apart.
func (o *HeadOutputs) DeltaIndex(l, n, i int) (base, stride int) {
	lv := o.Levels[l]
	a, hw := i%o.A, i/o.A
	return ((n*4*o.A+4*a)*lv.H+hw/lv.W)*lv.W + hw%lv.W, lv.H * lv.W
}

// RPNCoder is the RPN's box coder: weights (1, 1, 1, 1), clip log(1000/16).
var RPNCoder = boxes.NewBoxCoder([4]float32{1, 1, 1, 1})

// Proposals are one image's filtered proposals, best first.
type Proposals struct {
	Boxes  []float32 // 4 per box, image coordinates
	Scores []float32 // sigmoid of the objectness logit
	Levels []int
}

// FilterProposals turns head outputs into proposals per image, as
// torchvision's RegionProposalNetwork.filter_proposals: per level the
// top-k anchors by objectness logit, decoded, clipped to the image (its
// size before padding), small boxes removed, scores below ScoreThresh
// dropped, NMS per level, and the best post-NMS top-n kept.
func FilterProposals(o *HeadOutputs, anchors [][]float32, imageSizes [][2]int, train bool, cfg Config) ([]Proposals, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if len(imageSizes) != o.N {
		return nil, fmt.Errorf("rpn: %d image sizes for a batch of %d", len(imageSizes), o.N)
	}
	preN, postN := cfg.PreNMSTopNTest, cfg.PostNMSTopNTest
	if train {
		preN, postN = cfg.PreNMSTopNTrain, cfg.PostNMSTopNTrain
	}
	out := make([]Proposals, o.N)
	for n := 0; n < o.N; n++ {
		var cand, deltas, anc []float32
		var logits []float32
		var levels []int
		for l, lv := range o.Levels {
			count := lv.H * lv.W * o.A
			if len(anchors[l]) != 4*count {
				return nil, fmt.Errorf("rpn: level %d has %d anchors, head has %d", l, len(anchors[l])/4, count)
			}
			vals := make([]float32, count)
			for i := range vals {
				vals[i] = o.Obj[l][o.ObjIndex(l, n, i)]
			}
			idx := topK(vals, preN)
			for _, i := range idx {
				logits = append(logits, vals[i])
				levels = append(levels, l)
				base, stride := o.DeltaIndex(l, n, i)
				d := o.Deltas[l]
				deltas = append(deltas, d[base], d[base+stride], d[base+2*stride], d[base+3*stride])
				anc = append(anc, anchors[l][4*i:4*i+4]...)
			}
		}
		var err error
		if cand, err = RPNCoder.Decode(deltas, anc); err != nil {
			return nil, err
		}
		h, w := imageSizes[n][0], imageSizes[n][1]
		if err := boxes.ClipToImage(cand, float32(h), float32(w)); err != nil {
			return nil, err
		}
		keep, err := boxes.RemoveSmall(cand, cfg.MinSize)
		if err != nil {
			return nil, err
		}
		var kb, ks []float32
		var kl []int
		for _, i := range keep {
			p := sigmoid32(logits[i])
			if p >= cfg.ScoreThresh {
				kb = append(kb, cand[4*i:4*i+4]...)
				ks = append(ks, p)
				kl = append(kl, levels[i])
			}
		}
		nmsKeep, err := boxes.BatchedNMSTorchvision(kb, ks, kl, cfg.NMSThresh)
		if err != nil {
			return nil, err
		}
		if len(nmsKeep) > postN {
			nmsKeep = nmsKeep[:postN]
		}
		p := Proposals{Boxes: make([]float32, 0, 4*len(nmsKeep)), Scores: make([]float32, 0, len(nmsKeep)), Levels: make([]int, 0, len(nmsKeep))}
		for _, i := range nmsKeep {
			p.Boxes = append(p.Boxes, kb[4*i:4*i+4]...)
			p.Scores = append(p.Scores, ks[i])
			p.Levels = append(p.Levels, kl[i])
		}
		out[n] = p
	}
	return out, nil
}

// sigmoid32 is torch.sigmoid on a float32.
func sigmoid32(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// topK returns the indices of the k largest values, largest first (ties:
// lower index first).
func topK(vals []float32, k int) []int {
	idx := make([]int, len(vals))
	for i := range idx {
		idx[i] = i
	}
	if k > len(vals) {
		k = len(vals)
	}
	sort.SliceStable(idx, func(a, b int) bool { return greater(vals[idx[a]], vals[idx[b]]) })
	return idx[:k]
}

// greater orders NaN first, as torch's topk does.
func greater(a, b float32) bool {
	if a != a {
		return b == b
	}
	return a > b
}
