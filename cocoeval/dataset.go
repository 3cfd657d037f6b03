package cocoeval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// Image is one entry of a COCO ground-truth file's "images" list.
type Image struct {
	ID       int64
	Width    int
	Height   int
	FileName string
}

// Annotation is one ground-truth object. BBox is COCO [x, y, width, height].
// Area is the annotation's "area" field (the mask area for COCO), which is what
// pycocotools uses for the small/medium/large ranges; it is not recomputed from
// the box.
type Annotation struct {
	ID         int64
	ImageID    int64
	CategoryID int64
	BBox       [4]float64
	Area       float64
	IsCrowd    bool
}

// Category is one entry of the "categories" list.
type Category struct {
	ID            int64
	Name          string
	Supercategory string
}

// Detection is one detection result, as in a COCO results file:
// {"image_id", "category_id", "bbox": [x, y, w, h], "score"}.
type Detection struct {
	ImageID    int64
	CategoryID int64
	BBox       [4]float64
	Score      float64
}

// Dataset is a validated, indexed COCO ground truth. Build it with LoadGT,
// ParseGT or NewDataset; the exported slices must not be modified afterwards.
type Dataset struct {
	// Source names where the dataset came from (a file path, or "GT JSON").
	Source      string
	Images      []Image
	Annotations []Annotation
	Categories  []Category

	imgIndex map[int64]int
	catIndex map[int64]int
}

// NumImages returns the number of images.
func (d *Dataset) NumImages() int { return len(d.Images) }

// HasImage reports whether id is an image id of the dataset.
func (d *Dataset) HasImage(id int64) bool { _, ok := d.imgIndex[id]; return ok }

// CategoryByID returns the category with the given id.
func (d *Dataset) CategoryByID(id int64) (Category, bool) {
	i, ok := d.catIndex[id]
	if !ok {
		return Category{}, false
	}
	return d.Categories[i], true
}

// NewDataset validates and indexes an in-memory ground truth. Errors (never
// silent skips): duplicate image, category or annotation ids, an annotation
// whose image or category is not listed, a non-finite box or area, a negative
// box width/height, a negative area. Boxes of zero width or height are kept,
// as pycocotools keeps them: such an object can never be matched and counts
// as missed. The slices are used as given (not copied).
func NewDataset(images []Image, anns []Annotation, cats []Category) (*Dataset, error) {
	return newDataset("ground truth", images, anns, cats)
}

func newDataset(src string, images []Image, anns []Annotation, cats []Category) (*Dataset, error) {
	d := &Dataset{Source: src, Images: images, Annotations: anns, Categories: cats,
		imgIndex: make(map[int64]int, len(images)), catIndex: make(map[int64]int, len(cats))}
	for i, im := range images {
		if j, dup := d.imgIndex[im.ID]; dup {
			return nil, fmt.Errorf("%s: images[%d]: duplicate image id %d (first at images[%d])", src, i, im.ID, j)
		}
		d.imgIndex[im.ID] = i
	}
	for i, c := range cats {
		if j, dup := d.catIndex[c.ID]; dup {
			return nil, fmt.Errorf("%s: categories[%d]: duplicate category id %d (first at categories[%d])", src, i, c.ID, j)
		}
		d.catIndex[c.ID] = i
	}
	annIDs := make(map[int64]int, len(anns))
	for i, a := range anns {
		where := fmt.Sprintf("%s: annotations[%d] (id %d)", src, i, a.ID)
		if j, dup := annIDs[a.ID]; dup {
			return nil, fmt.Errorf("%s: duplicate annotation id (first at annotations[%d])", where, j)
		}
		annIDs[a.ID] = i
		if _, ok := d.imgIndex[a.ImageID]; !ok {
			return nil, fmt.Errorf("%s: image_id %d is not in images", where, a.ImageID)
		}
		if _, ok := d.catIndex[a.CategoryID]; !ok {
			return nil, fmt.Errorf("%s: category_id %d is not in categories", where, a.CategoryID)
		}
		if err := checkBox(a.BBox); err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		if math.IsNaN(a.Area) || math.IsInf(a.Area, 0) || a.Area < 0 {
			return nil, fmt.Errorf("%s: invalid area %v", where, a.Area)
		}
	}
	return d, nil
}

func checkBox(b [4]float64) error {
	for _, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("bbox %v has a non-finite value", b)
		}
	}
	if b[2] < 0 || b[3] < 0 {
		return fmt.Errorf("bbox %v has a negative width or height", b)
	}
	return nil
}

// JSON shapes. Ids are decoded as float64 (then checked to be integers) so
// that a wrong JSON type is reported by encoding/json with its byte offset.
type rawGT struct {
	Images      *[]rawImage `json:"images"`
	Annotations []rawAnn    `json:"annotations"`
	Categories  *[]rawCat   `json:"categories"`
}

type rawImage struct {
	ID       *float64 `json:"id"`
	Width    float64  `json:"width"`
	Height   float64  `json:"height"`
	FileName string   `json:"file_name"`
}

type rawAnn struct {
	ID         *float64  `json:"id"`
	ImageID    *float64  `json:"image_id"`
	CategoryID *float64  `json:"category_id"`
	BBox       []float64 `json:"bbox"`
	Area       *float64  `json:"area"`
	IsCrowd    flexBool  `json:"iscrowd"`
}

type rawCat struct {
	ID            *float64 `json:"id"`
	Name          string   `json:"name"`
	Supercategory string   `json:"supercategory"`
}

type rawDet struct {
	ImageID    *float64  `json:"image_id"`
	CategoryID *float64  `json:"category_id"`
	BBox       []float64 `json:"bbox"`
	Score      *float64  `json:"score"`
}

// flexBool accepts 0/1 (COCO's iscrowd) as well as true/false and null.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	switch s {
	case "true":
		*f = true
		return nil
	case "false", "null":
		*f = false
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("iscrowd must be a number or a boolean, got %s", s)
	}
	*f = v != 0
	return nil
}

func toID(v *float64, what string) (int64, error) {
	if v == nil {
		return 0, fmt.Errorf("missing %q", what)
	}
	if *v != math.Trunc(*v) || math.Abs(*v) > 1<<53 {
		return 0, fmt.Errorf("%q = %v is not an integer", what, *v)
	}
	return int64(*v), nil
}

// LoadGT reads a COCO instances ground-truth JSON file (see ParseGT).
func LoadGT(path string) (*Dataset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseGT(data, path)
}

// ParseGT parses a COCO instances ground-truth JSON document: "images" and
// "categories" are required, "annotations" may be absent. Per annotation,
// "id", "image_id", "category_id" and a 4-number "bbox" are required; a
// missing "area" falls back to bbox w*h and a missing "iscrowd" to 0 (where
// pycocotools would fail with a KeyError). The "ignore" field is not used:
// pycocotools overwrites it with iscrowd. Errors name the position
// (line:column for malformed JSON, the list index otherwise); see NewDataset
// for the validation rules.
func ParseGT(data []byte) (*Dataset, error) { return parseGT(data, "GT JSON") }

func parseGT(data []byte, src string) (*Dataset, error) {
	var raw rawGT
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, jsonError(src, data, err)
	}
	if raw.Images == nil {
		return nil, fmt.Errorf("%s: no \"images\" list", src)
	}
	if raw.Categories == nil {
		return nil, fmt.Errorf("%s: no \"categories\" list", src)
	}
	images := make([]Image, len(*raw.Images))
	for i, r := range *raw.Images {
		id, err := toID(r.ID, "id")
		if err != nil {
			return nil, fmt.Errorf("%s: images[%d]: %v", src, i, err)
		}
		images[i] = Image{ID: id, Width: int(r.Width), Height: int(r.Height), FileName: r.FileName}
	}
	cats := make([]Category, len(*raw.Categories))
	for i, r := range *raw.Categories {
		id, err := toID(r.ID, "id")
		if err != nil {
			return nil, fmt.Errorf("%s: categories[%d]: %v", src, i, err)
		}
		cats[i] = Category{ID: id, Name: r.Name, Supercategory: r.Supercategory}
	}
	anns := make([]Annotation, len(raw.Annotations))
	for i, r := range raw.Annotations {
		var a Annotation
		var err error
		if a.ID, err = toID(r.ID, "id"); err == nil {
			if a.ImageID, err = toID(r.ImageID, "image_id"); err == nil {
				a.CategoryID, err = toID(r.CategoryID, "category_id")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: annotations[%d]: %v", src, i, err)
		}
		if len(r.BBox) != 4 {
			return nil, fmt.Errorf("%s: annotations[%d] (id %d): bbox must have 4 numbers, has %d", src, i, a.ID, len(r.BBox))
		}
		copy(a.BBox[:], r.BBox)
		if r.Area != nil {
			a.Area = *r.Area
		} else {
			a.Area = a.BBox[2] * a.BBox[3]
		}
		a.IsCrowd = bool(r.IsCrowd)
		anns[i] = a
	}
	return newDataset(src, images, anns, cats)
}

// LoadResults reads a COCO detection results file (see ParseResults).
func LoadResults(gt *Dataset, path string) ([]Detection, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseResults(gt, data, path)
}

// ParseResults parses a COCO results JSON document, a list of
// {"image_id", "category_id", "bbox": [x,y,w,h], "score"} objects, with
// pycocotools loadRes semantics: every image id must be an image of gt (the
// error names the unknown ids); area = w*h and iscrowd = 0 are implied.
// Results whose category is not a gt category are kept here and ignored by
// Evaluate (as pycocotools does). An empty list is accepted (pycocotools
// crashes on it); it evaluates to AP/AR 0 for every category with GT.
func ParseResults(gt *Dataset, data []byte) ([]Detection, error) {
	return parseResults(gt, data, "results JSON")
}

func parseResults(gt *Dataset, data []byte, src string) ([]Detection, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] != '[' && json.Valid(trimmed) {
		return nil, fmt.Errorf("%s: results must be a JSON array of objects", src)
	}
	var raw []rawDet
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, jsonError(src, data, err)
	}
	dets := make([]Detection, len(raw))
	for i, r := range raw {
		var d Detection
		var err error
		if d.ImageID, err = toID(r.ImageID, "image_id"); err == nil {
			d.CategoryID, err = toID(r.CategoryID, "category_id")
		}
		if err == nil && r.Score == nil {
			err = errors.New(`missing "score"`)
		}
		if err == nil && len(r.BBox) != 4 {
			err = fmt.Errorf("bbox must have 4 numbers, has %d", len(r.BBox))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: result [%d]: %v", src, i, err)
		}
		copy(d.BBox[:], r.BBox)
		d.Score = *r.Score
		dets[i] = d
	}
	if err := checkDetections(gt, dets); err != nil {
		return nil, fmt.Errorf("%s: %v", src, err)
	}
	return dets, nil
}

// checkDetections applies loadRes' rule (every image id is a GT image) and
// rejects boxes and scores Evaluate cannot handle.
func checkDetections(gt *Dataset, dets []Detection) error {
	var unknown []int64
	seen := map[int64]bool{}
	for i, d := range dets {
		if !gt.HasImage(d.ImageID) {
			if !seen[d.ImageID] {
				seen[d.ImageID] = true
				unknown = append(unknown, d.ImageID)
			}
			continue
		}
		if err := checkBox(d.BBox); err != nil {
			return fmt.Errorf("result [%d] (image %d): %v", i, d.ImageID, err)
		}
		if math.IsNaN(d.Score) || math.IsInf(d.Score, 0) {
			return fmt.Errorf("result [%d] (image %d): score %v is not finite", i, d.ImageID, d.Score)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		show := unknown
		more := ""
		if len(show) > 10 {
			show = show[:10]
			more = fmt.Sprintf(" and %d more", len(unknown)-10)
		}
		parts := make([]string, len(show))
		for i, id := range show {
			parts[i] = fmt.Sprint(id)
		}
		return fmt.Errorf("results do not correspond to the ground truth %s: image ids not in it: %s%s",
			gt.Source, strings.Join(parts, ", "), more)
	}
	return nil
}

// jsonError converts encoding/json's byte offsets into "file:line:col: msg".
func jsonError(src string, data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var pos int
	switch {
	case errors.As(err, &se):
		// Offset: bytes read, the offending byte included
		pos = clampPos(data, se.Offset-1)
	case errors.As(err, &te):
		// Offset: just past the value (or one byte further for a literal
		// or number): point at the start of a scalar value instead
		pos = scalarStart(data, clampPos(data, te.Offset-1))
	default:
		return fmt.Errorf("%s: invalid JSON: %v", src, err)
	}
	line, col := lineCol(data, pos)
	return fmt.Errorf("%s:%d:%d: invalid JSON: %v", src, line, col, err)
}

func clampPos(data []byte, off int64) int {
	return int(max(0, min(off, int64(len(data)))))
}

// scalarStart walks back from pos (at or just after the end of a JSON value)
// to the first byte of the value when it is a string, number or literal;
// for an object or array it returns the closing bracket's position.
func scalarStart(data []byte, pos int) int {
	isWord := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '-' || c == '+'
	}
	if pos >= len(data) {
		return pos
	}
	p := pos
	// a literal or number ends one byte before the reported position
	if p > 0 && strings.IndexByte(" \t\r\n,}]", data[p]) >= 0 && isWord(data[p-1]) {
		p--
	}
	switch c := data[p]; {
	case c == '"':
		for q := p - 1; q >= 0; q-- {
			if data[q] != '"' {
				continue
			}
			bs := 0
			for r := q - 1; r >= 0 && data[r] == '\\'; r-- {
				bs++
			}
			if bs%2 == 0 {
				return q
			}
		}
		return p
	case isWord(c):
		for p > 0 && isWord(data[p-1]) {
			p--
		}
		return p
	}
	return p
}

// lineCol returns the 1-based line and column of byte position pos.
func lineCol(data []byte, pos int) (line, col int) {
	line = 1 + bytes.Count(data[:pos], []byte{'\n'})
	start := bytes.LastIndexByte(data[:pos], '\n') + 1
	return line, pos - start + 1
}
