package synth

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
)

// AnnotationOptions configure a COCO-size instances file.
type AnnotationOptions struct {
	Images      int   // default 118287 (COCO train2017)
	Annotations int   // default 860001 (COCO train2017)
	Seed        int64 // default 1
}

// COCO's 80 category ids (1..90 with COCO's gaps).
var cocoCategoryIDs = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
	31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
	62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90}

// WriteCOCOSizeAnnotations writes an instances JSON shaped like COCO's
// instances_train2017.json (about 450 MB at the defaults): the same top-level
// sections and per-record fields (licenses, flickr/coco URLs, dates),
// COCO-like image sizes, polygon segmentations of 4-44 vertices with two
// decimals, about 1% crowd annotations with RLE counts, 80 categories with
// COCO's ids. The values are random (a function of the seed); the point is
// the file's size and structure, for loader time and memory at COCO scale.
func WriteCOCOSizeAnnotations(out io.Writer, o AnnotationOptions) error {
	if o.Images == 0 {
		o.Images = 118287
	}
	if o.Annotations == 0 {
		o.Annotations = 860001
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Images < 1 || o.Annotations < 0 {
		return fmt.Errorf("synth: need at least one image and no negative annotation count (images %d, annotations %d)", o.Images, o.Annotations)
	}
	w := bufio.NewWriterSize(out, 1<<20)
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0xc0c0))
	sizes := Options{Sizes: "coco", Size: 640}
	b := make([]byte, 0, 1<<16)
	flush := func() error {
		_, err := w.Write(b)
		b = b[:0]
		return err
	}
	b = append(b, `{"info": {"description": "skd COCO-size synthetic annotations", "url": "", "version": "1.0", "year": 2026, "contributor": "skd", "date_created": "2026/12/02"}, "licenses": [`...)
	for i := 1; i <= 8; i++ {
		if i > 1 {
			b = append(b, ", "...)
		}
		b = fmt.Appendf(b, `{"url": "http://creativecommons.org/licenses/by/2.0/", "id": %d, "name": "Attribution License %d"}`, i, i)
	}
	b = append(b, `], "images": [`...)
	wh := make([][2]int, o.Images)
	for i := 0; i < o.Images; i++ {
		s1, s2 := splitSeed(o.Seed, "annotations", i)
		iw, ih := sizes.imageSize(s1, s2)
		wh[i] = [2]int{iw, ih}
		if i > 0 {
			b = append(b, ", "...)
		}
		id := 9 + i*3
		b = fmt.Appendf(b, `{"license": %d, "file_name": "%012d.jpg", "coco_url": "http://images.cocodataset.org/train2017/%012d.jpg", "height": %d, "width": %d, "date_captured": "2013-11-%02d %02d:%02d:%02d", "flickr_url": "http://farm%d.staticflickr.com/%d/%d_%x_z.jpg", "id": %d}`,
			1+r.IntN(8), id, id, ih, iw, 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 1+r.IntN(9), 1000+r.IntN(9000), r.Int64N(1e10), r.Uint32(), id)
		if len(b) > 1<<15 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	b = append(b, `], "annotations": [`...)
	for a := 0; a < o.Annotations; a++ {
		img := r.IntN(o.Images)
		iw, ih := float64(wh[img][0]), float64(wh[img][1])
		// box: log-uniform area from ~10 px^2 to half the image
		area := math.Exp(math.Log(10) + r.Float64()*(math.Log(iw*ih/2)-math.Log(10)))
		ar := math.Exp((r.Float64() - 0.5) * 2)
		bw := math.Min(math.Sqrt(area*ar), iw-1)
		bh := math.Min(area/math.Max(bw, 1), ih-1)
		bx, by := r.Float64()*(iw-bw), r.Float64()*(ih-bh)
		crowd := r.Float64() < 0.01
		if a > 0 {
			b = append(b, ", "...)
		}
		b = append(b, `{"segmentation": `...)
		if crowd {
			b = fmt.Appendf(b, `{"counts": [`)
			n := 20 + r.IntN(200)
			for k := 0; k < n; k++ {
				if k > 0 {
					b = append(b, ", "...)
				}
				b = strconv.AppendInt(b, int64(r.IntN(400)), 10)
			}
			b = fmt.Appendf(b, `], "size": [%d, %d]}`, int(ih), int(iw))
		} else {
			b = append(b, "[["...)
			n := 4 + r.IntN(41)
			cx, cy := bx+bw/2, by+bh/2
			for k := 0; k < n; k++ {
				t := 2 * math.Pi * float64(k) / float64(n)
				rad := 0.5 + 0.5*r.Float64()
				if k > 0 {
					b = append(b, ", "...)
				}
				b = strconv.AppendFloat(b, math.Round((cx+rad*bw/2*math.Cos(t))*100)/100, 'f', -1, 64)
				b = append(b, ", "...)
				b = strconv.AppendFloat(b, math.Round((cy+rad*bh/2*math.Sin(t))*100)/100, 'f', -1, 64)
			}
			b = append(b, "]]"...)
		}
		cat := cocoCategoryIDs[r.IntN(len(cocoCategoryIDs))]
		iscrowd := 0
		if crowd {
			iscrowd = 1
		}
		b = append(b, `, "area": `...)
		b = strconv.AppendFloat(b, math.Round(bw*bh*0.7*1e4)/1e4, 'f', -1, 64)
		b = fmt.Appendf(b, `, "iscrowd": %d, "image_id": %d, "bbox": [`, iscrowd, 9+img*3)
		for k, v := range []float64{bx, by, bw, bh} {
			if k > 0 {
				b = append(b, ", "...)
			}
			b = strconv.AppendFloat(b, math.Round(v*100)/100, 'f', -1, 64)
		}
		b = fmt.Appendf(b, `], "category_id": %d, "id": %d}`, cat, 1+a)
		if len(b) > 1<<15 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	b = append(b, `], "categories": [`...)
	for i, id := range cocoCategoryIDs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = fmt.Appendf(b, `{"supercategory": "super%d", "id": %d, "name": "category_%d"}`, id/10, id, id)
	}
	b = append(b, "]}"...)
	if err := flush(); err != nil {
		return err
	}
	return w.Flush()
}
