// Package synth generates the project's embedded synthetic detection data
// set: real COCO-format files (JPEG images plus instances JSON) of five
// shape classes (circle, square, triangle, ring, cross) on textured, noisy
// backgrounds, small enough for a small detector to learn in minutes on two
// cores.
//
// Layout written under a directory:
//
//	DIR/train/000001.jpg ...
//	DIR/val/000001.jpg ...
//	DIR/annotations/instances_train.json
//	DIR/annotations/instances_val.json
//	DIR/synth.json            (the options; marks a complete set)
//
// Each image holds 3 to 8 shapes of COCO-small (< 32^2 px), -medium and
// -large sizes with random colour, rotation and position (overlaps and
// partial occlusion happen; a shape left less than 40% visible is removed
// from the scene), and sometimes a crowd: a cluster of tiny shapes of one
// class annotated by a single box with iscrowd=1. Annotation boxes are the
// tight boxes of the visible pixels, area is the visible pixel count (what a
// COCO mask area is). Everything is a function of the seed: the same seed
// gives byte-identical JSON and images.
package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// Classes are the category names; category id i+1 is Classes[i].
var Classes = []string{"circle", "square", "triangle", "ring", "cross"}

// Options configure a synthetic set.
type Options struct {
	Train int   `json:"train"` // training images
	Val   int   `json:"val"`   // validation images
	Seed  int64 `json:"seed"`
	// Size is the width and height of the images (default 320); with
	// Sizes "coco" it is the long side instead (default 640).
	Size int `json:"size"`
	// Sizes is "" (every image Size x Size) or "coco": each image gets a
	// COCO-like shape (long side Size, mostly 4:3, 3:2 and 16:9 landscape,
	// about a quarter portrait, a few square or elongated), so that a
	// batch pipeline meets the many padded shapes real data gives.
	Sizes string `json:"sizes,omitempty"`
	// CrowdProb is the probability that an image holds a crowd cluster
	// (default 0.2; negative: never).
	CrowdProb float64 `json:"crowd_prob"`
	// Quality is the JPEG quality (default 92).
	Quality int `json:"quality"`
	// Variant is "" (the five-shape set) or "hard" (16 classes that
	// differ in fine detail, clutter, occlusion, a wide size range; see
	// hard.go). The default variant's output does not depend on this field.
	Variant string `json:"variant,omitempty"`
	// Holdout is a third split of that many images, "holdout", drawn from
	// the training stream right after the training images (training images
	// Train+1 .. Train+Holdout, never trained on): a held-out part of the
	// training data for choosing hyper-parameters without touching val.
	Holdout int `json:"holdout,omitempty"`
	// Workers used to render (default GOMAXPROCS); it does not change the output.
	Workers int `json:"-"`
}

func (o Options) withDefaults() (Options, error) {
	if o.Size == 0 {
		o.Size = 320
		if o.Sizes == "coco" {
			o.Size = 640
		}
	}
	if o.Variant != "" && o.Variant != "hard" {
		return o, fmt.Errorf("synth: variant %q (want empty or hard)", o.Variant)
	}
	if o.Holdout < 0 {
		return o, fmt.Errorf("synth: negative holdout split size %d", o.Holdout)
	}
	if o.Sizes != "" && o.Sizes != "coco" {
		return o, fmt.Errorf("synth: sizes %q (want empty or coco)", o.Sizes)
	}
	if o.CrowdProb == 0 {
		o.CrowdProb = 0.2
	}
	if o.Quality == 0 {
		o.Quality = 92
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Size < 32 || o.Size > 4096 {
		return o, fmt.Errorf("synth: image size %d outside [32, 4096]", o.Size)
	}
	if o.Train < 0 || o.Val < 0 || o.Train+o.Val == 0 {
		return o, fmt.Errorf("synth: need a positive number of images (train %d, val %d)", o.Train, o.Val)
	}
	if o.Quality < 1 || o.Quality > 100 {
		return o, fmt.Errorf("synth: JPEG quality %d outside [1, 100]", o.Quality)
	}
	return o, nil
}

// Object is one annotated object of a rendered scene.
type Object struct {
	Class   int        // index into ClassNames(variant)
	IsCrowd bool       // a cluster of tiny shapes annotated as one crowd box
	BBox    [4]float64 // x, y, w, h of the visible pixels (COCO xywh)
	Area    int        // visible pixel count
	Colour  [3]uint8   // fill colour before noise
}

// Scene is a rendered image with its objects. Owner[y*W+x] is the index in
// Objects of the object visible at that pixel, or -1 for background.
type Scene struct {
	W, H    int
	RGB     *image.RGBA
	Objects []Object
	Owner   []int16
}

type shape struct {
	class   int
	cx, cy  float64 // centre
	d       float64 // bounding diameter
	theta   float64 // rotation
	colour  [3]uint8
	owner   int // object index
	cosT    float64
	sinT    float64
	minX    int
	minY    int
	maxX    int
	maxY    int
	crowd   bool
	removed bool
}

func (s *shape) prepare(w, h int) {
	s.cosT, s.sinT = math.Cos(s.theta), math.Sin(s.theta)
	r := s.d/2 + 1
	s.minX, s.maxX = max(0, int(s.cx-r)), min(w-1, int(s.cx+r))
	s.minY, s.maxY = max(0, int(s.cy-r)), min(h-1, int(s.cy+r))
}

// inside reports whether the pixel centre (px, py) lies in the shape.
func (s *shape) inside(px, py float64) bool {
	dx, dy := px-s.cx, py-s.cy
	u := dx*s.cosT + dy*s.sinT
	v := -dx*s.sinT + dy*s.cosT
	return baseInside(s.class, u, v, s.d)
}

// baseInside reports whether (u, v), in the shape's rotated frame, lies in
// base shape class of bounding diameter d.
func baseInside(class int, u, v, d float64) bool {
	r := d / 2
	switch class {
	case 0: // circle
		return u*u+v*v <= r*r
	case 1: // square, side 0.75 d
		a := 0.375 * d
		return math.Abs(u) <= a && math.Abs(v) <= a
	case 2: // equilateral triangle of circumradius r: inside the three edges at distance r/2
		for k := 0; k < 3; k++ {
			ang := -math.Pi/2 + float64(k)*2*math.Pi/3
			if -(u*math.Cos(ang) + v*math.Sin(ang)) > r/2 {
				return false
			}
		}
		return true
	case 3: // ring, inner radius 0.55 r
		q := u*u + v*v
		return q <= r*r && q >= 0.3025*r*r
	default: // cross: two bars 0.9 d long, 0.3 d thick
		l, t := 0.45*d, 0.15*d
		au, av := math.Abs(u), math.Abs(v)
		return (au <= t && av <= l) || (av <= t && au <= l)
	}
}

func hsv(h, s, v float64) [3]uint8 {
	i := math.Floor(h * 6)
	f := h*6 - i
	p, q, t := v*(1-s), v*(1-f*s), v*(1-(1-f)*s)
	var r, g, b float64
	switch int(i) % 6 {
	case 0:
		r, g, b = v, t, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, t
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = t, p, v
	default:
		r, g, b = v, p, q
	}
	return [3]uint8{uint8(r*255 + 0.5), uint8(g*255 + 0.5), uint8(b*255 + 0.5)}
}

func splitSeed(seed int64, split string, idx int) (uint64, uint64) {
	h := uint64(1469598103934665603)
	for _, c := range []byte(split) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return uint64(seed)*0x9E3779B97F4A7C15 ^ h, uint64(idx)
}

// Render draws image idx of a split ("train" or "val") of a set with the
// given options. It is deterministic.
func Render(opts Options, split string, idx int) (*Scene, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s1, s2 := splitSeed(o.Seed, split, idx)
	w, h := o.imageSize(s1, s2)
	if o.Variant == "hard" {
		return renderHard(rand.New(rand.NewPCG(s1, s2)), w, h, o.CrowdProb), nil
	}
	return render(rand.New(rand.NewPCG(s1, s2)), w, h, o.CrowdProb), nil
}

// imageSize returns image (s1, s2)'s width and height. In "coco" mode the
// shape is drawn from its own stream (the scene's stream stays that of a
// square set): the long side is Size, or 0.75-1x Size for one image in
// ten; the aspect ratio is 4:3 (45%), 3:2 (20%), 16:9 (10%) or uniform in
// [1, 2.2] (25%), with a +-3% jitter; 27% of images are portrait.
func (o Options) imageSize(s1, s2 uint64) (int, int) {
	if o.Sizes != "coco" {
		return o.Size, o.Size
	}
	r := rand.New(rand.NewPCG(s1^0x51e5c0c0, s2))
	long := float64(o.Size)
	if r.Float64() < 0.1 {
		long *= 0.75 + 0.25*r.Float64()
	}
	var ar float64
	switch p := r.Float64(); {
	case p < 0.45:
		ar = 4.0 / 3
	case p < 0.65:
		ar = 1.5
	case p < 0.75:
		ar = 16.0 / 9
	default:
		ar = 1 + 1.2*r.Float64()
	}
	ar *= 0.97 + 0.06*r.Float64()
	if ar < 1 {
		ar = 1
	}
	w, h := int(math.Round(long)), int(math.Round(long/ar))
	if r.Float64() < 0.27 {
		w, h = h, w
	}
	return max(w, 32), max(h, 32)
}

func render(rng *rand.Rand, W, H int, crowdProb float64) *Scene {
	var shapes []*shape
	var objects []Object
	short := float64(min(W, H))
	nObj := 3 + rng.IntN(6)
	for k := 0; k < nObj; k++ {
		var lo, hi float64
		switch p := rng.Float64(); {
		case p < 0.35: // small: area well under 32^2
			lo, hi = 10, 26
		case p < 0.75: // medium
			lo, hi = 44, 100
		default: // large: area over 96^2
			lo, hi = 120, 190
		}
		hi = math.Min(hi, 0.7*short)
		lo = math.Min(lo, hi)
		d := lo + rng.Float64()*(hi-lo)
		sh := &shape{class: rng.IntN(len(Classes)), d: d,
			cx:     d/4 + rng.Float64()*(float64(W)-d/2),
			cy:     d/4 + rng.Float64()*(float64(H)-d/2),
			theta:  rng.Float64() * 2 * math.Pi,
			colour: hsv(rng.Float64(), 0.55+0.45*rng.Float64(), 0.45+0.55*rng.Float64()),
			owner:  len(objects)}
		shapes = append(shapes, sh)
		objects = append(objects, Object{Class: sh.class, Colour: sh.colour})
	}
	if crowdProb > 0 && rng.Float64() < crowdProb {
		class := rng.IntN(len(Classes))
		col := hsv(rng.Float64(), 0.6+0.4*rng.Float64(), 0.6+0.4*rng.Float64())
		rad := math.Min(22, short/5)
		gx := rad + rng.Float64()*(float64(W)-2*rad)
		gy := rad + rng.Float64()*(float64(H)-2*rad)
		n := 6 + rng.IntN(5)
		for k := 0; k < n; k++ {
			a, rr := rng.Float64()*2*math.Pi, rad*math.Sqrt(rng.Float64())
			shapes = append(shapes, &shape{class: class, d: 5 + 4*rng.Float64(),
				cx: gx + rr*math.Cos(a), cy: gy + rr*math.Sin(a), theta: rng.Float64() * 2 * math.Pi,
				colour: col, owner: len(objects), crowd: true})
		}
		objects = append(objects, Object{Class: class, IsCrowd: true, Colour: col})
	}
	for _, s := range shapes {
		s.prepare(W, H)
	}

	// Background: tinted base, two sinusoidal textures, a gradient.
	base := hsv(rng.Float64(), 0.1+0.25*rng.Float64(), 0.25+0.5*rng.Float64())
	f1, f2 := 0.02+0.08*rng.Float64(), 0.05+0.2*rng.Float64()
	a1, a2 := rng.Float64()*math.Pi, rng.Float64()*math.Pi
	amp1, amp2 := 10+20*rng.Float64(), 5+10*rng.Float64()
	gdir := rng.Float64() * 2 * math.Pi
	ph1, ph2 := rng.Float64()*6.3, rng.Float64()*6.3

	owner := make([]int16, W*H)
	full := make([]int, len(objects))
	// Rasterise, removing non-crowd objects left less than 40% visible.
	for pass := 0; ; pass++ {
		for i := range owner {
			owner[i] = -1
		}
		for i := range full {
			full[i] = 0
		}
		for _, s := range shapes {
			if s.removed {
				continue
			}
			for y := s.minY; y <= s.maxY; y++ {
				for x := s.minX; x <= s.maxX; x++ {
					if s.inside(float64(x)+0.5, float64(y)+0.5) {
						owner[y*W+x] = int16(s.owner)
						full[s.owner]++
					}
				}
			}
		}
		vis := make([]int, len(objects))
		for _, o := range owner {
			if o >= 0 {
				vis[o]++
			}
		}
		changed := false
		for _, s := range shapes {
			if s.removed || s.crowd {
				continue
			}
			if hidden(vis[s.owner], full[s.owner]) {
				s.removed = true
				changed = true
			}
		}
		if !changed || pass > 10 {
			break
		}
	}

	kept, owner := keepVisible(objects, owner, W, H)

	// Paint: shapes shaded slightly, Gaussian noise everywhere.
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			fx, fy := float64(x), float64(y)
			var c [3]float64
			if o := owner[y*W+x]; o >= 0 {
				col := kept[o].Colour
				sh := 0.92 + 0.08*math.Sin(0.15*fx+0.11*fy)
				c = [3]float64{float64(col[0]) * sh, float64(col[1]) * sh, float64(col[2]) * sh}
			} else {
				t := amp1*math.Sin(f1*(fx*math.Cos(a1)+fy*math.Sin(a1))+ph1) +
					amp2*math.Sin(f2*(fx*math.Cos(a2)+fy*math.Sin(a2))+ph2) +
					20*((fx*math.Cos(gdir)+fy*math.Sin(gdir))/float64(max(W, H)))
				c = [3]float64{float64(base[0]) + t, float64(base[1]) + t, float64(base[2]) + t}
			}
			p := img.Pix[y*img.Stride+4*x:]
			for ch := 0; ch < 3; ch++ {
				v := c[ch] + 7*rng.NormFloat64()
				p[ch] = uint8(math.Max(0, math.Min(255, math.Round(v))))
			}
			p[3] = 255
		}
	}
	return &Scene{W: W, H: H, RGB: img, Objects: kept, Owner: owner}
}

// hidden reports whether an object with vis of its full pixels visible is
// removed from the scene (fewer than 12 pixels or under 40% visible).
func hidden(vis, full int) bool { return vis < 12 || float64(vis) < 0.4*float64(full) }

// keepVisible sets the objects' boxes and areas from the visible pixels of
// the owner map, drops the objects with none, and renumbers the owner map
// (in place) to the kept objects.
func keepVisible(objects []Object, owner []int16, W, H int) ([]Object, []int16) {
	// Boxes and areas from the visible pixels.
	minX := make([]int, len(objects))
	minY := make([]int, len(objects))
	maxX := make([]int, len(objects))
	maxY := make([]int, len(objects))
	for i := range objects {
		minX[i], minY[i], maxX[i], maxY[i] = W, H, -1, -1
	}
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			if o := owner[y*W+x]; o >= 0 {
				objects[o].Area++
				minX[o], maxX[o] = min(minX[o], x), max(maxX[o], x)
				minY[o], maxY[o] = min(minY[o], y), max(maxY[o], y)
			}
		}
	}
	// Keep the objects that are visible; renumber the owner map.
	remap := make([]int16, len(objects))
	var kept []Object
	for i, o := range objects {
		if o.Area == 0 {
			remap[i] = -1
			continue
		}
		o.BBox = [4]float64{float64(minX[i]), float64(minY[i]), float64(maxX[i] - minX[i] + 1), float64(maxY[i] - minY[i] + 1)}
		remap[i] = int16(len(kept))
		kept = append(kept, o)
	}
	for i, o := range owner {
		if o >= 0 {
			owner[i] = remap[o]
		}
	}

	return kept, owner
}

type cocoImage struct {
	ID       int    `json:"id"`
	FileName string `json:"file_name"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

type cocoAnn struct {
	ID         int        `json:"id"`
	ImageID    int        `json:"image_id"`
	CategoryID int        `json:"category_id"`
	BBox       [4]float64 `json:"bbox"`
	Area       int        `json:"area"`
	IsCrowd    int        `json:"iscrowd"`
}

type cocoCat struct {
	ID            int    `json:"id"`
	Name          string `json:"name"`
	Supercategory string `json:"supercategory"`
}

type cocoJSON struct {
	Info        map[string]string `json:"info"`
	Images      []cocoImage       `json:"images"`
	Annotations []cocoAnn         `json:"annotations"`
	Categories  []cocoCat         `json:"categories"`
}

// writeSplit renders n images of a split into dir/split and returns the JSON.
func writeSplit(dir, split string, n int, o Options) ([]byte, error) {
	if err := os.MkdirAll(filepath.Join(dir, split), 0o755); err != nil {
		return nil, err
	}
	objs := make([][]Object, n)
	dims := make([][2]int, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				stream, idx := split, i
				if split == "holdout" {
					stream, idx = "train", o.Train+i
				}
				sc, err := Render(o, stream, idx)
				if err == nil {
					var buf bytes.Buffer
					if err = jpeg.Encode(&buf, sc.RGB, &jpeg.Options{Quality: o.Quality}); err == nil {
						err = os.WriteFile(filepath.Join(dir, split, fileName(i)), buf.Bytes(), 0o644)
					}
				}
				if err == nil {
					objs[i] = sc.Objects
					dims[i] = [2]int{sc.W, sc.H}
				}
				errs[i] = err
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("synth: writing %s images: %w", split, err)
		}
	}
	js := cocoJSON{Info: map[string]string{"description": fmt.Sprintf("skd synthetic shapes, %s split, seed %d", split, o.Seed)},
		Images: []cocoImage{}, Annotations: []cocoAnn{}}
	for c, name := range ClassNames(o.Variant) {
		js.Categories = append(js.Categories, cocoCat{ID: c + 1, Name: name, Supercategory: supercategory(o.Variant, c)})
	}
	aid := 0
	for i := 0; i < n; i++ {
		js.Images = append(js.Images, cocoImage{ID: i + 1, FileName: fileName(i), Width: dims[i][0], Height: dims[i][1]})
		for _, ob := range objs[i] {
			aid++
			crowd := 0
			if ob.IsCrowd {
				crowd = 1
			}
			js.Annotations = append(js.Annotations, cocoAnn{ID: aid, ImageID: i + 1, CategoryID: ob.Class + 1,
				BBox: ob.BBox, Area: ob.Area, IsCrowd: crowd})
		}
	}
	return json.Marshal(js)
}

func fileName(i int) string { return fmt.Sprintf("%06d.jpg", i+1) }

// Generate writes a complete set into dir, which must not exist or be empty.
// It writes into a temporary sibling directory first and renames it, so an
// interrupted run leaves no partial set at dir.
func Generate(dir string, opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if err := removeIfEmpty(dir); err != nil {
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	if err := os.MkdirAll(filepath.Join(tmp, "annotations"), 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	for _, sp := range []struct {
		name string
		n    int
	}{{"train", o.Train}, {"val", o.Val}, {"holdout", o.Holdout}} {
		if sp.name == "holdout" && sp.n == 0 {
			continue
		}
		js, err := writeSplit(tmp, sp.name, sp.n, o)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, "annotations", "instances_"+sp.name+".json"), js, 0o644); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	marker, _ := json.MarshalIndent(o, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, markerName), marker, 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("synth: moving the generated set to %s: %w", dir, err)
	}
	return nil
}

const markerName = "synth.json"

func removeIfEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("synth: %s exists and is not empty", dir)
	}
	return os.Remove(dir)
}

// checkMarker reports whether dir holds a complete set made with o.
func checkMarker(dir string, o Options) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("synth: %w", err)
	}
	var have Options
	if err := json.Unmarshal(b, &have); err != nil {
		return false, fmt.Errorf("synth: %s: %w", filepath.Join(dir, markerName), err)
	}
	have.Workers = o.Workers
	if have != o {
		return false, fmt.Errorf("synth: %s holds a set made with other options (%+v, want %+v); remove it or use another directory",
			dir, have, o)
	}
	return true, nil
}

// Ensure makes sure dir holds the synthetic set described by opts:
// it returns at once when a complete set with the same options is there,
// generates it (atomically, see Generate) when dir is missing or empty, and
// fails when dir holds something else. Concurrent callers are safe: the
// loser of the final rename accepts the winner's identical set.
func Ensure(dir string, opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if ok, err := checkMarker(dir, o); ok || err != nil {
		return err
	}
	if err := Generate(dir, o); err != nil {
		if ok, err2 := checkMarker(dir, o); ok && err2 == nil {
			return nil
		}
		return err
	}
	return nil
}

// TrainAnnotations is the training annotation file of a set in dir.
func TrainAnnotations(dir string) string {
	return filepath.Join(dir, "annotations", "instances_train.json")
}

// ValAnnotations is the validation annotation file of a set.
func ValAnnotations(dir string) string {
	return filepath.Join(dir, "annotations", "instances_val.json")
}

// HoldoutAnnotations is the held-out training annotation file of a set
// made with Options.Holdout > 0.
func HoldoutAnnotations(dir string) string {
	return filepath.Join(dir, "annotations", "instances_holdout.json")
}

// HoldoutImages is the held-out training image directory of a set.
func HoldoutImages(dir string) string { return filepath.Join(dir, "holdout") }

// TrainImages is the training image directory of a set.
func TrainImages(dir string) string { return filepath.Join(dir, "train") }

// ValImages is the validation image directory of a set.
func ValImages(dir string) string { return filepath.Join(dir, "val") }
