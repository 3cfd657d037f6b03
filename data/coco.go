package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// Category is one COCO category with its contiguous training label.
type Category struct {
	ID            int64  // COCO category id as in the JSON file
	Name          string // category name
	Supercategory string // COCO supercategory (may be empty)
	Label         int    // contiguous training label, 1..K (0 is background)
}

// Annotation is one usable COCO box annotation (crowd or not).
type Annotation struct {
	ID         int64      // COCO annotation id
	ImageID    int64      // COCO image id
	CategoryID int64      // COCO category id
	Label      int        // contiguous label 1..K
	BBox       [4]float32 // x1, y1, x2, y2 in pixels, clipped to the image
	RawBBox    [4]float64 // the JSON bbox as given: x, y, w, h
	Area       float64    // the JSON "area" field (mask area for COCO)
	IsCrowd    bool       // iscrowd == 1: kept for evaluation, not a training target
}

// ImageRecord is one image of a Dataset.
type ImageRecord struct {
	ID       int64  // COCO image id
	FileName string // file_name from the JSON
	Path     string // FileName joined to the image directory
	Width    int    // width from the JSON
	Height   int    // height from the JSON
	// Annotations holds every usable annotation of the image, crowd included,
	// in JSON order.
	Annotations []Annotation
	// Boxes and Labels are the training targets: the non-crowd annotations,
	// boxes as x1, y1, x2, y2 pixels (clipped), labels 1..K.
	Boxes  [][4]float32
	Labels []int
}

// Dataset is a loaded COCO instances file.
type Dataset struct {
	AnnPath  string        // annotation file it was read from
	ImageDir string        // directory the file names are relative to
	Images   []ImageRecord // images, in JSON order (filtered when FilterEmpty)
	// Categories sorted by ascending COCO id; Categories[i].Label == i+1.
	Categories []Category
	// LabelToCatID maps a contiguous label to its COCO category id;
	// LabelToCatID[0] is 0 (background).
	LabelToCatID []int64
	// CatIDToLabel maps a COCO category id to its label 1..K.
	CatIDToLabel map[int64]int
	Stats        LoadStats // what was dropped while loading
}

// NumClasses is K, the number of object categories (background excluded).
func (d *Dataset) NumClasses() int { return len(d.Categories) }

// CategoryName returns the name of a contiguous label ("background" for 0).
func (d *Dataset) CategoryName(label int) string {
	if label == 0 {
		return "background"
	}
	if label < 0 || label > len(d.Categories) {
		return fmt.Sprintf("label%d", label)
	}
	return d.Categories[label-1].Name
}

// LoadStats counts what LoadCOCO dropped.
type LoadStats struct {
	Annotations     int // annotations in the file
	Crowd           int // usable crowd annotations (kept, not training targets)
	InvalidBoxes    int // dropped: NaN/Inf, w or h <= 0 after clipping, outside the image
	ImagesTotal     int // images in the file
	ImagesNoTargets int // images without any usable non-crowd annotation
	ImagesFiltered  int // images removed because FilterEmpty was set
}

// COCOOptions configures LoadCOCO.
type COCOOptions struct {
	// FilterEmpty drops images with no usable non-crowd annotation (use it
	// for the training set; keep every image for evaluation).
	FilterEmpty bool
	// Logger receives the summary line of dropped items; nil means slog.Default().
	Logger *slog.Logger
}

type cocoFile struct {
	Images []struct {
		ID       int64  `json:"id"`
		FileName string `json:"file_name"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	} `json:"images"`
	Annotations []struct {
		ID         int64     `json:"id"`
		ImageID    int64     `json:"image_id"`
		CategoryID int64     `json:"category_id"`
		BBox       []float64 `json:"bbox"`
		Area       float64   `json:"area"`
		IsCrowd    int       `json:"iscrowd"`
	} `json:"annotations"`
	Categories []struct {
		ID            int64  `json:"id"`
		Name          string `json:"name"`
		Supercategory string `json:"supercategory"`
	} `json:"categories"`
}

// lineCol converts an encoding/json error offset (the error happened after
// reading off bytes, so at byte off-1) into a 1-based line and column.
func lineCol(b []byte, off int64) (line, col int) {
	p := int(min(max(off-1, 0), int64(len(b))))
	pre := b[:p]
	line = bytes.Count(pre, []byte{'\n'}) + 1
	col = p - (bytes.LastIndexByte(pre, '\n') + 1) + 1
	return line, col
}

// jsonError rewrites an encoding/json error with the file name, line and column.
func jsonError(path string, b []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		l, c := lineCol(b, se.Offset)
		return fmt.Errorf("%s:%d:%d: malformed JSON: %v", path, l, c, se)
	case errors.As(err, &te):
		l, c := lineCol(b, te.Offset)
		return fmt.Errorf("%s:%d:%d: wrong JSON type: field %q: %v", path, l, c, te.Field, te)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// LoadCOCO reads a COCO instances JSON file. imageDir is joined to every
// file_name (image files are not opened here: a missing file is reported
// when it is loaded).
//
// Structural inconsistencies are errors naming the file: duplicate image,
// annotation or category ids, an annotation whose image id or category id is
// unknown, an image without a positive width and height, a bbox without four
// numbers. Invalid boxes (NaN/Inf, width or height <= 0 after clipping to the
// image, entirely outside it) are dropped and counted in one log line.
func LoadCOCO(annPath, imageDir string, opts COCOOptions) (*Dataset, error) {
	b, err := os.ReadFile(annPath)
	if err != nil {
		return nil, fmt.Errorf("reading COCO annotations: %w", err)
	}
	return ParseCOCO(b, annPath, imageDir, opts)
}

// ParseCOCO is LoadCOCO on bytes already read; name is used in messages.
func ParseCOCO(b []byte, name, imageDir string, opts COCOOptions) (*Dataset, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var f cocoFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, jsonError(name, b, err)
	}
	ds := &Dataset{AnnPath: name, ImageDir: imageDir, CatIDToLabel: map[int64]int{}}

	// Categories: sorted ascending by id -> labels 1..K.
	cats := make([]Category, 0, len(f.Categories))
	seenCat := map[int64]bool{}
	for _, c := range f.Categories {
		if seenCat[c.ID] {
			return nil, fmt.Errorf("%s: duplicate category id %d", name, c.ID)
		}
		seenCat[c.ID] = true
		cats = append(cats, Category{ID: c.ID, Name: c.Name, Supercategory: c.Supercategory})
	}
	sort.Slice(cats, func(i, j int) bool { return cats[i].ID < cats[j].ID })
	ds.LabelToCatID = make([]int64, len(cats)+1)
	for i := range cats {
		cats[i].Label = i + 1
		ds.LabelToCatID[i+1] = cats[i].ID
		ds.CatIDToLabel[cats[i].ID] = i + 1
	}
	ds.Categories = cats

	imgIndex := make(map[int64]int, len(f.Images))
	images := make([]ImageRecord, len(f.Images))
	for i, im := range f.Images {
		if _, dup := imgIndex[im.ID]; dup {
			return nil, fmt.Errorf("%s: duplicate image id %d", name, im.ID)
		}
		if im.Width <= 0 || im.Height <= 0 {
			return nil, fmt.Errorf("%s: image id %d (%q) has no positive width and height (%dx%d)",
				name, im.ID, im.FileName, im.Width, im.Height)
		}
		imgIndex[im.ID] = i
		images[i] = ImageRecord{ID: im.ID, FileName: im.FileName, Path: filepath.Join(imageDir, im.FileName),
			Width: im.Width, Height: im.Height}
	}
	st := LoadStats{Annotations: len(f.Annotations), ImagesTotal: len(f.Images)}
	seenAnn := make(map[int64]bool, len(f.Annotations))
	for _, a := range f.Annotations {
		if seenAnn[a.ID] {
			return nil, fmt.Errorf("%s: duplicate annotation id %d", name, a.ID)
		}
		seenAnn[a.ID] = true
		ii, ok := imgIndex[a.ImageID]
		if !ok {
			return nil, fmt.Errorf("%s: annotation id %d refers to unknown image id %d", name, a.ID, a.ImageID)
		}
		label, ok := ds.CatIDToLabel[a.CategoryID]
		if !ok {
			return nil, fmt.Errorf("%s: annotation id %d refers to unknown category id %d", name, a.ID, a.CategoryID)
		}
		if len(a.BBox) != 4 {
			return nil, fmt.Errorf("%s: annotation id %d: bbox has %d numbers, want 4", name, a.ID, len(a.BBox))
		}
		rec := &images[ii]
		box, ok := clipBox(a.BBox, rec.Width, rec.Height)
		if !ok {
			st.InvalidBoxes++
			continue
		}
		ann := Annotation{ID: a.ID, ImageID: a.ImageID, CategoryID: a.CategoryID, Label: label, BBox: box,
			Area: a.Area, IsCrowd: a.IsCrowd != 0}
		copy(ann.RawBBox[:], a.BBox)
		rec.Annotations = append(rec.Annotations, ann)
		if ann.IsCrowd {
			st.Crowd++
			continue
		}
		rec.Boxes = append(rec.Boxes, box)
		rec.Labels = append(rec.Labels, label)
	}
	for _, rec := range images {
		if len(rec.Boxes) == 0 {
			st.ImagesNoTargets++
			if opts.FilterEmpty {
				st.ImagesFiltered++
				continue
			}
		}
		ds.Images = append(ds.Images, rec)
	}
	ds.Stats = st
	log.Info("loaded COCO annotations", "file", name, "images", len(ds.Images), "images_in_file", st.ImagesTotal,
		"categories", len(cats), "annotations", st.Annotations, "crowd", st.Crowd,
		"invalid_boxes_dropped", st.InvalidBoxes, "images_without_targets", st.ImagesNoTargets,
		"images_filtered", st.ImagesFiltered)
	return ds, nil
}

// clipBox converts an xywh COCO box to x1y1x2y2 clipped to a w x h image;
// ok is false when the result is degenerate or the input not finite.
func clipBox(b []float64, w, h int) (out [4]float32, ok bool) {
	for _, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return out, false
		}
	}
	x1, y1 := b[0], b[1]
	x2, y2 := b[0]+b[2], b[1]+b[3]
	x1 = math.Max(0, math.Min(x1, float64(w)))
	x2 = math.Max(0, math.Min(x2, float64(w)))
	y1 = math.Max(0, math.Min(y1, float64(h)))
	y2 = math.Max(0, math.Min(y2, float64(h)))
	if !(x2 > x1) || !(y2 > y1) {
		return out, false
	}
	return [4]float32{float32(x1), float32(y1), float32(x2), float32(y2)}, true
}
