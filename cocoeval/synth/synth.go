// Package synth generates random COCO-like ground truth and detections for
// benchmarks and tests of package cocoeval: objects of mixed sizes (small,
// medium and large), a few crowd regions, detections near the objects
// (jittered, sometimes of the wrong class) and random false positives.
package synth

import (
	"math"
	"math/rand/v2"

	"github.com/skd-go/skd/cocoeval"
)

// Config sizes a generated set.
type Config struct {
	Images        int     // number of images
	Categories    int     // number of categories
	GTPerImage    int     // mean GT objects per image (uniform 1..2*mean-1)
	DetsPerImage  int     // detections per image (exact)
	CrowdFraction float64 // fraction of GT objects marked iscrowd
	Seed          uint64
}

// COCOVal is the benchmark set: 5000 images, 80 categories, ~37k GT,
// 180k detections (36 per image), 1% crowd.
var COCOVal = Config{Images: 5000, Categories: 80, GTPerImage: 7, DetsPerImage: 36, CrowdFraction: 0.01, Seed: 1}

// Generate returns the ground truth and the detections of cfg; the same
// config gives the same set.
func Generate(cfg Config) (*cocoeval.Dataset, []cocoeval.Detection, error) {
	r := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	round := func(v float64) float64 { return math.Round(v*100) / 100 }
	var imgs []cocoeval.Image
	var anns []cocoeval.Annotation
	var dets []cocoeval.Detection
	cats := make([]cocoeval.Category, cfg.Categories)
	for k := range cats {
		// COCO-like non-contiguous ids
		cats[k] = cocoeval.Category{ID: int64(k + 1 + k/10), Name: "class_" + itoa(k+1)}
	}
	randBox := func(W, H float64) [4]float64 {
		// log-uniform size from 4 to 400 px: a mix of small, medium, large
		s := math.Exp(math.Log(4) + r.Float64()*(math.Log(400)-math.Log(4)))
		ar := math.Exp((r.Float64() - 0.5) * math.Log(4))
		w := math.Min(s*math.Sqrt(ar), W)
		h := math.Min(s/math.Sqrt(ar), H)
		x := r.Float64() * (W - w)
		y := r.Float64() * (H - h)
		return [4]float64{round(x), round(y), round(w), round(h)}
	}
	annID := int64(1)
	for i := 0; i < cfg.Images; i++ {
		id := int64(1 + 3*i)
		W, H := 640.0, 480.0
		if i%3 == 1 {
			W, H = 480, 640
		}
		imgs = append(imgs, cocoeval.Image{ID: id, Width: int(W), Height: int(H)})
		n := 1 + r.IntN(max(1, 2*cfg.GTPerImage-1))
		first := len(anns)
		for range n {
			b := randBox(W, H)
			a := cocoeval.Annotation{ID: annID, ImageID: id, CategoryID: cats[r.IntN(len(cats))].ID, BBox: b,
				Area: round(b[2] * b[3] * (0.5 + 0.4*r.Float64()))}
			a.IsCrowd = r.Float64() < cfg.CrowdFraction
			anns = append(anns, a)
			annID++
		}
		nd := 0
		for _, a := range anns[first:] {
			if r.Float64() >= 0.8 {
				continue
			}
			for range 1 + r.IntN(3) {
				if nd >= cfg.DetsPerImage {
					break
				}
				b := a.BBox
				j := 0.15
				x := b[0] + b[2]*j*(2*r.Float64()-1)
				y := b[1] + b[3]*j*(2*r.Float64()-1)
				w := math.Max(1, b[2]*(1+j*(2*r.Float64()-1)))
				h := math.Max(1, b[3]*(1+j*(2*r.Float64()-1)))
				cat := a.CategoryID
				if r.Float64() < 0.1 {
					cat = cats[r.IntN(len(cats))].ID
				}
				dets = append(dets, cocoeval.Detection{ImageID: id, CategoryID: cat,
					BBox: [4]float64{round(x), round(y), round(w), round(h)}, Score: 0.3 + 0.7*r.Float64()})
				nd++
			}
		}
		for ; nd < cfg.DetsPerImage; nd++ {
			dets = append(dets, cocoeval.Detection{ImageID: id, CategoryID: cats[r.IntN(len(cats))].ID,
				BBox: randBox(W, H), Score: 0.6 * r.Float64()})
		}
	}
	gt, err := cocoeval.NewDataset(imgs, anns, cats)
	return gt, dets, err
}

func itoa(v int) string {
	if v < 10 {
		return string(rune('0' + v))
	}
	return itoa(v/10) + string(rune('0'+v%10))
}
