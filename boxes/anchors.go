package boxes

import (
	"fmt"
	"math"
)

// AnchorGenerator generates anchors over a feature pyramid as
// torchvision.models.detection.anchor_utils.AnchorGenerator (0.14).
//
// Level l has len(Sizes[l]) * len(AspectRatios[l]) cell anchors, ordered
// ratio-major then size, each round([-ws, -hs, ws, hs] / 2) (round half to
// even, like torch.round) with h_ratio = sqrt(ratio), w_ratio = 1/h_ratio,
// ws = w_ratio*size, hs = h_ratio*size, all in float32. A level whose feature
// map is H x W on a padded batch image of imageH x imageW uses strides
// imageH/H and imageW/W (integer division, as torchvision) and shifts
// (x*stride_w, y*stride_h, x*stride_w, y*stride_h) for y in [0,H), x in
// [0,W); anchors are ordered location-major (row y, then column x), then
// cell anchor, and levels are concatenated.
type AnchorGenerator struct {
	// Sizes holds the anchor sizes of each level (torchvision's sizes
	// tuple of tuples).
	Sizes [][]float32
	// AspectRatios holds the height/width ratios of each level.
	AspectRatios [][]float32
	cell         [][]float32
}

// NewAnchorGenerator validates sizes and ratios and precomputes the cell
// anchors. When aspectRatios has a single entry it is used for every level
// (torchvision's (ratios,) * len(sizes)).
func NewAnchorGenerator(sizes, aspectRatios [][]float32) (*AnchorGenerator, error) {
	if len(sizes) == 0 {
		return nil, fmt.Errorf("boxes: AnchorGenerator needs at least one level of sizes")
	}
	if len(aspectRatios) == 1 && len(sizes) > 1 {
		r := aspectRatios[0]
		aspectRatios = make([][]float32, len(sizes))
		for l := range aspectRatios {
			aspectRatios[l] = r
		}
	}
	if len(aspectRatios) != len(sizes) {
		return nil, fmt.Errorf("boxes: AnchorGenerator has %d levels of sizes and %d of aspect ratios", len(sizes), len(aspectRatios))
	}
	g := &AnchorGenerator{Sizes: sizes, AspectRatios: aspectRatios}
	for l := range sizes {
		if len(sizes[l]) == 0 || len(aspectRatios[l]) == 0 {
			return nil, fmt.Errorf("boxes: AnchorGenerator level %d has %d sizes and %d aspect ratios, want at least one of each", l, len(sizes[l]), len(aspectRatios[l]))
		}
		for _, r := range aspectRatios[l] {
			if !(r > 0) || math.IsInf(float64(r), 0) {
				return nil, fmt.Errorf("boxes: AnchorGenerator level %d has aspect ratio %v, want a positive finite number", l, r)
			}
		}
		for _, s := range sizes[l] {
			if !(s > 0) || math.IsInf(float64(s), 0) {
				return nil, fmt.Errorf("boxes: AnchorGenerator level %d has size %v, want a positive finite number", l, s)
			}
		}
		g.cell = append(g.cell, cellAnchors(sizes[l], aspectRatios[l]))
	}
	return g, nil
}

// DefaultAnchorGenerator returns torchvision's Faster R-CNN R50-FPN anchor
// generator: sizes (32,), (64,), (128,), (256,), (512,), ratios (0.5, 1, 2)
// on every level.
func DefaultAnchorGenerator() *AnchorGenerator {
	g := &AnchorGenerator{Sizes: [][]float32{{32}, {64}, {128}, {256}, {512}}}
	for _, s := range g.Sizes {
		r := []float32{0.5, 1, 2}
		g.AspectRatios = append(g.AspectRatios, r)
		g.cell = append(g.cell, cellAnchors(s, r))
	}
	return g
}

// cellAnchors is torchvision's generate_anchors.
func cellAnchors(sizes, ratios []float32) []float32 {
	out := make([]float32, 0, 4*len(sizes)*len(ratios))
	for _, r := range ratios {
		hr := float32(math.Sqrt(float64(r)))
		wr := 1 / hr
		for _, s := range sizes {
			ws := wr * s
			hs := hr * s
			out = append(out, round32(-ws/2), round32(-hs/2), round32(ws/2), round32(hs/2))
		}
	}
	return out
}

func round32(v float32) float32 { return float32(math.RoundToEven(float64(v))) }

// NumLevels returns the number of pyramid levels.
func (g *AnchorGenerator) NumLevels() int { return len(g.cell) }

// NumAnchorsPerLocation returns, per level, the number of cell anchors
// (sizes x ratios), torchvision's num_anchors_per_location.
func (g *AnchorGenerator) NumAnchorsPerLocation() []int {
	out := make([]int, len(g.cell))
	for l, c := range g.cell {
		out[l] = len(c) / 4
	}
	return out
}

// CellAnchors returns a copy of the zero-centred cell anchors of level l
// (flat, 4 values per anchor).
func (g *AnchorGenerator) CellAnchors(l int) ([]float32, error) {
	if l < 0 || l >= len(g.cell) {
		return nil, fmt.Errorf("boxes: AnchorGenerator has %d levels, asked for level %d", len(g.cell), l)
	}
	return append([]float32(nil), g.cell[l]...), nil
}

// GenerateLevels returns the anchors of each level for a padded batch image
// of imageH x imageW and feature maps of the given (H, W) sizes, one per
// level.
func (g *AnchorGenerator) GenerateLevels(imageH, imageW int, featureSizes [][2]int) ([][]float32, error) {
	if len(featureSizes) != len(g.cell) {
		return nil, fmt.Errorf("boxes: AnchorGenerator has %d levels but got %d feature sizes", len(g.cell), len(featureSizes))
	}
	if imageH <= 0 || imageW <= 0 {
		return nil, fmt.Errorf("boxes: AnchorGenerator got image size %dx%d, want positive", imageH, imageW)
	}
	out := make([][]float32, len(g.cell))
	for l, fs := range featureSizes {
		fh, fw := fs[0], fs[1]
		if fh <= 0 || fw <= 0 {
			return nil, fmt.Errorf("boxes: AnchorGenerator level %d has feature size %dx%d, want positive", l, fh, fw)
		}
		sh, sw := imageH/fh, imageW/fw
		base := g.cell[l]
		a := len(base) / 4
		lvl := make([]float32, 0, fh*fw*a*4)
		for y := 0; y < fh; y++ {
			shy := float32(y * sh)
			for x := 0; x < fw; x++ {
				shx := float32(x * sw)
				for k := 0; k < a; k++ {
					lvl = append(lvl, shx+base[4*k], shy+base[4*k+1], shx+base[4*k+2], shy+base[4*k+3])
				}
			}
		}
		out[l] = lvl
	}
	return out, nil
}

// Generate returns the anchors of all levels concatenated (torchvision's
// per-image anchors tensor, flat, 4 values per anchor).
func (g *AnchorGenerator) Generate(imageH, imageW int, featureSizes [][2]int) ([]float32, error) {
	levels, err := g.GenerateLevels(imageH, imageW, featureSizes)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, l := range levels {
		total += len(l)
	}
	out := make([]float32, 0, total)
	for _, l := range levels {
		out = append(out, l...)
	}
	return out, nil
}
