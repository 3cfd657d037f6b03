package export

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/skd-go/skd/data"
)

// InputImage is one preprocessed image of a manifest (see PrepareInputs).
type InputImage struct {
	// ImageID is the image's position in sorted path order, from 1 (as
	// kddetect numbers images without --ann).
	ImageID  int64  `json:"image_id"`
	FileName string `json:"file_name"`
	Path     string `json:"path"`
	// OrigH, OrigW: decoded (EXIF-oriented) size; H, W: resized size.
	OrigH int `json:"orig_h"`
	OrigW int `json:"orig_w"`
	H     int `json:"h"`
	W     int `json:"w"`
	// Tensor is the file (relative to the manifest) holding the resized
	// RGB image, float32 little-endian [3, H, W], values 0..255.
	Tensor string `json:"tensor"`
}

// Manifest lists an ONNX model's inputs for a set of images.
type Manifest struct {
	// CategoryIDs maps labels to COCO category ids (index 0: background).
	CategoryIDs []int64      `json:"category_ids"`
	Images      []InputImage `json:"images"`
}

// PrepareInputs decodes the images (sorted by path, EXIF orientation
// applied, as kddetect), resizes each as the model's input expects
// (data.ResizeScale with minSizeTest / maxSize, bilinear, no
// normalisation), and writes the tensors and manifest.json into dir.
func PrepareInputs(paths []string, minSizeTest, maxSize int, categoryIDs []int64, dir string) (*Manifest, error) {
	if minSizeTest <= 0 {
		return nil, fmt.Errorf("inputs: min_size_test %d must be > 0", minSizeTest)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("inputs: %w", err)
	}
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	m := &Manifest{CategoryIDs: categoryIDs}
	for i, p := range sorted {
		img, err := data.DecodeImage(p)
		if err != nil {
			return nil, fmt.Errorf("inputs: %s: %w", p, err)
		}
		if img.C != 3 {
			return nil, fmt.Errorf("inputs: %s: %d channels, want 3", p, img.C)
		}
		_, oh, ow := data.ResizeScale(img.H, img.W, minSizeTest, maxSize)
		r := img
		if oh != img.H || ow != img.W {
			r = data.ResizeBilinear(img, oh, ow)
		}
		name := fmt.Sprintf("%04d_%s.f32", i+1, strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)))
		buf := make([]byte, 4*len(r.Pix))
		for j, v := range r.Pix {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			return nil, fmt.Errorf("inputs: %w", err)
		}
		m.Images = append(m.Images, InputImage{ImageID: int64(i + 1), FileName: filepath.Base(p), Path: p,
			OrigH: img.H, OrigW: img.W, H: oh, W: ow, Tensor: name})
	}
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		return nil, fmt.Errorf("inputs: %w", err)
	}
	return m, nil
}

// Result is one detection of a COCO results file.
type Result struct {
	ImageID    int64      `json:"image_id"`
	FileName   string     `json:"file_name"`
	CategoryID int64      `json:"category_id"`
	BBox       [4]float64 `json:"bbox"` // x, y, w, h
	Score      float64    `json:"score"`
}

// ReadResults reads a COCO results JSON file.
func ReadResults(path string) ([]Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r []Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Tolerances of Compare (the acceptance criteria).
const (
	MatchIoU      = 0.999
	MatchScoreTol = 1e-4
	MatchFraction = 0.99
)

// Comparison is how many reference detections have a counterpart.
type Comparison struct {
	// Ref and Got count detections; Matched counts reference detections
	// with a detection of the same image and class, IoU >= MatchIoU and
	// |score difference| <= MatchScoreTol (each matched at most once).
	Ref, Got, Matched int
	// MaxScoreDiff and MinIoU are over the matched pairs.
	MaxScoreDiff, MinIoU float64
	// Unmatched describes up to 10 reference detections without a match.
	Unmatched []string
}

// Fraction is Matched / max(Ref, Got) (1 when both are empty), so extra
// detections count against it as missing ones do.
func (c Comparison) Fraction() float64 {
	n := max(c.Ref, c.Got)
	if n == 0 {
		return 1
	}
	return float64(c.Matched) / float64(n)
}

// OK reports whether the fraction reaches MatchFraction.
func (c Comparison) OK() bool { return c.Fraction() >= MatchFraction }

func (c Comparison) String() string {
	return fmt.Sprintf("%d of %d reference detections matched (%d in the other; %.2f%%; min IoU %.6f, max |dscore| %.2g)",
		c.Matched, c.Ref, c.Got, 100*c.Fraction(), c.MinIoU, c.MaxScoreDiff)
}

func iouXYWH(a, b [4]float64) float64 {
	ix := math.Min(a[0]+a[2], b[0]+b[2]) - math.Max(a[0], b[0])
	iy := math.Min(a[1]+a[3], b[1]+b[3]) - math.Max(a[1], b[1])
	if ix <= 0 || iy <= 0 {
		if a == b {
			return 1 // identical degenerate boxes
		}
		return 0
	}
	inter := ix * iy
	return inter / (a[2]*a[3] + b[2]*b[3] - inter)
}

// Compare matches got against ref: greedily, reference detections by
// decreasing score, each to the unused detection of the same image and
// class with the highest IoU that passes both tolerances.
func Compare(ref, got []Result) Comparison {
	c := Comparison{Ref: len(ref), Got: len(got), MinIoU: 1}
	type key struct{ img, cat int64 }
	pool := map[key][]int{}
	for i, g := range got {
		k := key{g.ImageID, g.CategoryID}
		pool[k] = append(pool[k], i)
	}
	order := make([]int, len(ref))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return ref[order[a]].Score > ref[order[b]].Score })
	used := make([]bool, len(got))
	for _, i := range order {
		r := ref[i]
		best, bestIoU := -1, 0.0
		for _, j := range pool[key{r.ImageID, r.CategoryID}] {
			if used[j] || math.Abs(got[j].Score-r.Score) > MatchScoreTol {
				continue
			}
			if v := iouXYWH(r.BBox, got[j].BBox); v >= MatchIoU && v > bestIoU {
				best, bestIoU = j, v
			}
		}
		if best < 0 {
			if len(c.Unmatched) < 10 {
				c.Unmatched = append(c.Unmatched, fmt.Sprintf("image %d (%s) category %d score %.6f bbox %.2f", r.ImageID, r.FileName, r.CategoryID, r.Score, r.BBox))
			}
			continue
		}
		used[best] = true
		c.Matched++
		c.MinIoU = math.Min(c.MinIoU, bestIoU)
		c.MaxScoreDiff = math.Max(c.MaxScoreDiff, math.Abs(got[best].Score-r.Score))
	}
	return c
}
