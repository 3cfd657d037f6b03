package data

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

type golden struct {
	Interp []struct {
		C, H, W int
		Scale   float64
		In      []float32
		OH      int       `json:"out_h"`
		OW      int       `json:"out_w"`
		Out     []float32 `json:"out"`
	} `json:"interp"`
	Sizes []struct {
		H, W, Min, Max int
		OH             int        `json:"out_h"`
		OW             int        `json:"out_w"`
		BoxIn          [4]float32 `json:"box_in"`
		BoxOut         [4]float32 `json:"box_out"`
	} `json:"sizes"`
	SizesRandom [][6]int `json:"sizes_random"`
	Pipeline    struct {
		H, W, Min, Max int
		In             []int
		ImageSize      []int     `json:"image_size"`
		BatchShape     []int     `json:"batch_shape"`
		Out            []float32 `json:"out"`
	} `json:"pipeline"`
}

func loadGolden(t *testing.T) *golden {
	b, err := os.ReadFile("testdata/resize_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestBilinearMatchesTorch(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Interp {
		m := &Image{C: c.C, H: c.H, W: c.W, Pix: c.In}
		out := ResizeBilinear(m, c.OH, c.OW)
		if len(out.Pix) != len(c.Out) {
			t.Fatalf("%dx%d -> %dx%d: %d values, torch %d", c.H, c.W, c.OH, c.OW, len(out.Pix), len(c.Out))
		}
		if d := maxAbsDiff(out.Pix, c.Out); d > 1e-5 {
			t.Errorf("%dx%d -> %dx%d: max diff %g", c.H, c.W, c.OH, c.OW, d)
		}
	}
}

func TestResizeScaleMatchesTorchvision(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Sizes {
		_, oh, ow := ResizeScale(c.H, c.W, c.Min, c.Max)
		if oh != c.OH || ow != c.OW {
			t.Errorf("%dx%d min %d max %d: %dx%d, torchvision %dx%d", c.H, c.W, c.Min, c.Max, oh, ow, c.OH, c.OW)
		}
		bx := [][4]float32{c.BoxIn}
		ScaleBoxes(bx, float32(ow)/float32(c.W), float32(oh)/float32(c.H))
		for k := 0; k < 4; k++ {
			if math.Abs(float64(bx[0][k]-c.BoxOut[k])) > 1e-6*math.Max(1, math.Abs(float64(c.BoxOut[k]))) {
				t.Errorf("%dx%d box %v, torchvision %v", c.H, c.W, bx[0], c.BoxOut)
			}
		}
	}
}

func TestResizeScaleRandomSizes(t *testing.T) {
	g := loadGolden(t)
	if len(g.SizesRandom) < 100 {
		t.Fatalf("only %d random sizes", len(g.SizesRandom))
	}
	for _, c := range g.SizesRandom {
		if _, oh, ow := ResizeScale(c[0], c[1], c[2], c[3]); oh != c[4] || ow != c[5] {
			t.Errorf("%dx%d min %d max %d: %dx%d, torchvision %dx%d", c[0], c[1], c[2], c[3], oh, ow, c[4], c[5])
		}
	}
}

func TestPipelineMatchesTorchvision(t *testing.T) {
	g := loadGolden(t).Pipeline
	img := NewImage(3, g.H, g.W)
	for i, v := range g.In {
		img.Pix[i] = float32(v)
	}
	s, err := TransformSample(img, nil, nil, TransformConfig{MinSizes: []int{g.Min}, MaxSize: g.Max}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Collate([]*Sample{s}, 32)
	if err != nil {
		t.Fatal(err)
	}
	if s.Item.H != g.ImageSize[0] || s.Item.W != g.ImageSize[1] {
		t.Fatalf("size %dx%d, torchvision %v", s.Item.H, s.Item.W, g.ImageSize)
	}
	if b.N != g.BatchShape[0] || b.C != g.BatchShape[1] || b.H != g.BatchShape[2] || b.W != g.BatchShape[3] {
		t.Fatalf("batch %d %d %d %d, torchvision %v", b.N, b.C, b.H, b.W, g.BatchShape)
	}
	if d := maxAbsDiff(b.Images, g.Out); d > 1e-5 {
		t.Errorf("pipeline max diff %g", d)
	}
}

func TestNormalizeCaffe(t *testing.T) {
	m := NewImage(3, 1, 2)
	copy(m.Pix, []float32{10, 20, 30, 40, 50, 60}) // R=10,20 G=30,40 B=50,60
	if err := Normalize(m, FormatCaffe); err != nil {
		t.Fatal(err)
	}
	want := []float32{50 - 103.53, 60 - 103.53, 30 - 116.28, 40 - 116.28, 10 - 123.675, 20 - 123.675}
	if d := maxAbsDiff(m.Pix, want); d > 1e-4 {
		t.Errorf("caffe: %v want %v", m.Pix, want)
	}
	if err := Normalize(m, "bgr"); err == nil {
		t.Error("unknown format accepted")
	}
}

// Property tests on random images and boxes.
func TestBoxTransformProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for it := 0; it < 200; it++ {
		h, w := 5+r.IntN(60), 5+r.IntN(60)
		n := 1 + r.IntN(5)
		boxes := make([][4]float32, n)
		for i := range boxes {
			x1, x2 := r.Float32()*float32(w), r.Float32()*float32(w)
			y1, y2 := r.Float32()*float32(h), r.Float32()*float32(h)
			boxes[i] = [4]float32{min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)}
		}
		// Two flips are the identity.
		fb := append([][4]float32(nil), boxes...)
		FlipBoxes(fb, w)
		for i := range fb {
			if fb[i][0] < 0 || fb[i][2] > float32(w) || fb[i][0] > fb[i][2] {
				t.Fatalf("flipped box outside: %v (w %d)", fb[i], w)
			}
			if math.Abs(float64(fb[i][2]-fb[i][0])-float64(boxes[i][2]-boxes[i][0])) > 1e-4 {
				t.Fatalf("flip changed the width: %v -> %v", boxes[i], fb[i])
			}
		}
		FlipBoxes(fb, w)
		for i := range fb {
			for k := 0; k < 4; k++ {
				if math.Abs(float64(fb[i][k]-boxes[i][k])) > 1e-4 {
					t.Fatalf("flip twice: %v -> %v", boxes[i], fb[i])
				}
			}
		}
		// The full transform keeps boxes in the resized image and maps back.
		img := NewImage(3, h, w)
		for i := range img.Pix {
			img.Pix[i] = r.Float32() * 255
		}
		labels := make([]int, n)
		cfg := TransformConfig{MinSizes: []int{8 + r.IntN(100), 50}, MaxSize: 40 + r.IntN(200), FlipProb: 0.5}
		s, err := TransformSample(img, boxes, labels, cfg, true, r)
		if err != nil {
			t.Fatal(err)
		}
		it2 := s.Item
		if s.Image.H != it2.H || s.Image.W != it2.W || it2.OrigH != h || it2.OrigW != w {
			t.Fatalf("sizes %+v image %dx%d", it2, s.Image.H, s.Image.W)
		}
		long := max(it2.H, it2.W)
		if long > cfg.MaxSize {
			t.Fatalf("long side %d > max %d", long, cfg.MaxSize)
		}
		for i, b := range it2.Boxes {
			eps := float32(1e-3)
			if b[0] < -eps || b[1] < -eps || b[2] > float32(it2.W)+eps || b[3] > float32(it2.H)+eps || b[0] > b[2] || b[1] > b[3] {
				t.Fatalf("box %v outside %dx%d", b, it2.W, it2.H)
			}
			o := it2.ToOriginal(b)
			for k := 0; k < 4; k++ {
				if math.Abs(float64(o[k]-boxes[i][k])) > 1e-3 {
					t.Fatalf("map back: %v -> %v -> %v (flip %v)", boxes[i], b, o, it2.Flipped)
				}
			}
		}
		// The input boxes were not modified in place.
		if &boxes[0] == &it2.Boxes[0] {
			t.Fatal("boxes aliased")
		}
	}
}

func TestFlipImage(t *testing.T) {
	m := NewImage(2, 2, 3)
	copy(m.Pix, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	FlipHorizontal(m)
	want := []float32{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}
	if maxAbsDiff(m.Pix, want) != 0 {
		t.Errorf("flip: %v", m.Pix)
	}
	// Flipping the image moves a bright pixel where FlipBoxes moves its box.
	img := NewImage(1, 4, 10)
	img.Pix[1*10+2] = 1 // pixel x=2 covers [2,3)
	bx := [][4]float32{{2, 1, 3, 2}}
	FlipHorizontal(img)
	FlipBoxes(bx, 10)
	if img.Pix[1*10+int(bx[0][0])] != 1 || bx[0][2]-bx[0][0] != 1 {
		t.Errorf("flip mismatch: box %v", bx[0])
	}
}

func TestCollatePadding(t *testing.T) {
	a := &Sample{Image: NewImage(3, 5, 7)}
	b := &Sample{Image: NewImage(3, 33, 2)}
	for i := range a.Image.Pix {
		a.Image.Pix[i] = 1
	}
	for i := range b.Image.Pix {
		b.Image.Pix[i] = 2
	}
	bt, err := Collate([]*Sample{a, b}, 32)
	if err != nil {
		t.Fatal(err)
	}
	if bt.N != 2 || bt.C != 3 || bt.H != 64 || bt.W != 32 || len(bt.Images) != 2*3*64*32 {
		t.Fatalf("shape %d %d %d %d", bt.N, bt.C, bt.H, bt.W)
	}
	var sum1, sum2 float64
	for c := 0; c < 3; c++ {
		for y := 0; y < 64; y++ {
			for x := 0; x < 32; x++ {
				v1 := bt.Images[((0*3+c)*64+y)*32+x]
				v2 := bt.Images[((1*3+c)*64+y)*32+x]
				in1 := y < 5 && x < 7
				in2 := y < 33 && x < 2
				if (in1 && v1 != 1) || (!in1 && v1 != 0) || (in2 && v2 != 2) || (!in2 && v2 != 0) {
					t.Fatalf("c %d y %d x %d: %v %v", c, y, x, v1, v2)
				}
				sum1 += float64(v1)
				sum2 += float64(v2)
			}
		}
	}
	if sum1 != 3*5*7 || sum2 != 2*3*33*2 {
		t.Errorf("sums %v %v", sum1, sum2)
	}
	bt1, _ := Collate([]*Sample{a}, 1)
	if bt1.H != 5 || bt1.W != 7 {
		t.Errorf("no rounding: %dx%d", bt1.H, bt1.W)
	}
	if _, err := Collate(nil, 32); err == nil {
		t.Error("empty collate accepted")
	}
}

func TestTransformConfigErrors(t *testing.T) {
	img := NewImage(3, 4, 4)
	for _, c := range []TransformConfig{{MinSizes: []int{0}}, {Format: "rgb"}, {FlipProb: 2}} {
		if _, err := TransformSample(img, nil, nil, c, false, nil); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if _, err := TransformSample(img, nil, nil, TransformConfig{}, true, nil); err == nil {
		t.Error("training without rng accepted")
	}
}
