package infer

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/model"
)

// ImageRef names one image to process.
type ImageRef struct {
	// Path is the file to read (JPEG or PNG).
	Path string
	// ID is the COCO image id reported with its detections.
	ID int64
	// FileName is reported with the detections (default: the base name of Path).
	FileName string
	// Width and Height, when > 0, are the expected decoded size (an
	// annotation file's); an image of another size is an error, since its
	// ground truth would not line up.
	Width, Height int
}

// Options configure Run.
type Options struct {
	// Transform resizes and normalises (use glue.Transform(cfg, false)).
	Transform data.TransformConfig
	// BatchSize is the number of images per Detect call (default 1).
	// Consecutive good images are batched together in input order.
	BatchSize int
	// Workers decode and transform images ahead of the detector (default:
	// GOMAXPROCS, at most 4). Results do not depend on it.
	Workers int
	// ScoreThresh keeps detections with score >= ScoreThresh (0: all that
	// the model returns, i.e. above model.roi_heads.score_thresh).
	ScoreThresh float32
	// Labels, when set, fills ImageResult.CategoryIDs.
	Labels *Labels
	// IgnoreEXIF decodes pixels as stored (torchvision's CocoDetection)
	// instead of applying the JPEG EXIF orientation (the default).
	IgnoreEXIF bool
}

// ImageResult is one image's detections in original image pixels, best
// first.
type ImageResult struct {
	ImageID  int64
	FileName string
	Path     string
	// Width and Height of the decoded (EXIF-oriented) image.
	Width, Height int
	// Boxes are x1, y1, x2, y2 in original pixels, clipped to the image.
	Boxes  [][4]float32
	Scores []float32
	// Labels are the model's labels (1..NumClasses-1).
	Labels []int
	// CategoryIDs are the COCO category ids (when Options.Labels is set).
	CategoryIDs []int64
}

// ImageError is an image that could not be processed.
type ImageError struct {
	Path    string
	ImageID int64
	Err     error
}

// Error implements error.
func (e ImageError) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }

// Unwrap returns the cause.
func (e ImageError) Unwrap() error { return e.Err }

// prepared is one decoded and transformed image, or its error.
type prepared struct {
	sample *data.Sample
	err    error
}

// Run detects objects in every image. Images are decoded and transformed
// by Options.Workers goroutines ahead of the detector (a bounded window, so
// memory stays bounded), batched in input order, and run through
// det.Detect; boxes are mapped back to original pixels. An image that
// cannot be read, decoded or transformed, or whose batch fails in the
// detector, is reported in the second result; the others are processed.
// Results are in input order. progress, when not nil, is called after each
// image (done counts failed images too).
func Run(det *model.FasterRCNN, images []ImageRef, opts Options, progress func(done, total int)) ([]ImageResult, []ImageError) {
	bs := opts.BatchSize
	if bs <= 0 {
		bs = 1
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	sizeDiv := opts.Transform.SizeDivisible
	if sizeDiv == 0 {
		sizeDiv = 32
	}
	total := len(images)
	// Decoding pipeline: a dispatcher hands out indices once a window slot
	// is free; each image's result goes to its own channel, read in order.
	outs := make([]chan prepared, total)
	for i := range outs {
		outs[i] = make(chan prepared, 1)
	}
	window := make(chan struct{}, workers+2*bs)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				s, err := prepare(images[i], opts)
				outs[i] <- prepared{s, err}
			}
		}()
	}
	go func() {
		for i := 0; i < total; i++ {
			window <- struct{}{}
			jobs <- i
		}
		close(jobs)
	}()
	defer wg.Wait()

	var results []ImageResult
	var bad []ImageError
	done := 0
	var pending []*data.Sample
	var pendingRef []ImageRef
	flush := func() {
		if len(pending) == 0 {
			return
		}
		res, err := detectBatch(det, pending, pendingRef, sizeDiv, opts)
		if err != nil {
			for _, r := range pendingRef {
				bad = append(bad, ImageError{Path: r.Path, ImageID: r.ID, Err: err})
			}
		} else {
			results = append(results, res...)
		}
		done += len(pending)
		if progress != nil {
			progress(done, total)
		}
		pending, pendingRef = pending[:0], pendingRef[:0]
	}
	for i := 0; i < total; i++ {
		p := <-outs[i]
		<-window
		if p.err != nil {
			bad = append(bad, ImageError{Path: images[i].Path, ImageID: images[i].ID, Err: p.err})
			done++
			if progress != nil {
				progress(done, total)
			}
			continue
		}
		pending = append(pending, p.sample)
		pendingRef = append(pendingRef, images[i])
		if len(pending) == bs {
			flush()
		}
	}
	flush()
	return results, bad
}

// prepare decodes and transforms one image.
func prepare(ref ImageRef, opts Options) (s *data.Sample, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("internal error while decoding: %v", r)
		}
	}()
	var img *data.Image
	if opts.IgnoreEXIF {
		img, err = data.DecodeImageRaw(ref.Path)
	} else {
		img, err = data.DecodeImage(ref.Path)
	}
	if err != nil {
		return nil, err
	}
	if img.C != 3 || img.H <= 0 || img.W <= 0 {
		return nil, fmt.Errorf("decoded to %dx%dx%d, want 3 channels", img.C, img.H, img.W)
	}
	if ref.Width > 0 && ref.Height > 0 && (img.W != ref.Width || img.H != ref.Height) {
		return nil, fmt.Errorf("image is %dx%d, the annotations say %dx%d", img.W, img.H, ref.Width, ref.Height)
	}
	s, err = data.TransformSample(img, nil, nil, opts.Transform, false, nil)
	if err != nil {
		return nil, err
	}
	s.Item.ImageID = ref.ID
	s.Item.FileName = ref.FileName
	return s, nil
}

// detectBatch collates samples, runs the detector and maps its output back.
func detectBatch(det *model.FasterRCNN, samples []*data.Sample, refs []ImageRef, sizeDiv int, opts Options) (_ []ImageResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in the detector: %v", r)
		}
	}()
	b, err := data.Collate(samples, sizeDiv)
	if err != nil {
		return nil, err
	}
	dets, _, err := det.Detect(glue.Input(b))
	if err != nil {
		return nil, err
	}
	if len(dets) != len(b.Items) {
		return nil, fmt.Errorf("detector returned %d results for %d images", len(dets), len(b.Items))
	}
	out := make([]ImageResult, len(b.Items))
	for i := range b.Items {
		it := &b.Items[i]
		r := ImageResult{ImageID: refs[i].ID, FileName: refs[i].FileName, Path: refs[i].Path, Width: it.OrigW, Height: it.OrigH}
		if r.FileName == "" {
			r.FileName = filepath.Base(refs[i].Path)
		}
		d := dets[i]
		for j, s := range d.Scores {
			if s < opts.ScoreThresh {
				continue
			}
			bx := [4]float32{d.Boxes[4*j], d.Boxes[4*j+1], d.Boxes[4*j+2], d.Boxes[4*j+3]}
			r.Boxes = append(r.Boxes, it.ToOriginal(bx))
			r.Scores = append(r.Scores, s)
			r.Labels = append(r.Labels, d.Labels[j])
			if opts.Labels != nil {
				r.CategoryIDs = append(r.CategoryIDs, opts.Labels.CategoryID(d.Labels[j]))
			}
		}
		out[i] = r
	}
	return out, nil
}
