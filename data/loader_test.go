package data

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// makeTestSet writes n small PNG images of varied sizes and a COCO JSON.
func makeTestSet(t testing.TB, n int) (*Dataset, string) {
	t.Helper()
	dir := t.TempDir()
	var imgs, anns []string
	for i := 0; i < n; i++ {
		w, h := 20+7*(i%5), 18+5*(i%4)
		if i%3 == 0 {
			w, h = h, w+9 // some portrait images
		}
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				m.Set(x, y, color.RGBA{uint8(i*20 + x), uint8(y * 7), uint8(x * y), 255})
			}
		}
		name := fmt.Sprintf("im%02d.png", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, m); err != nil {
			t.Fatal(err)
		}
		f.Close()
		imgs = append(imgs, fmt.Sprintf(`{"id":%d,"file_name":%q,"width":%d,"height":%d}`, 100+i, name, w, h))
		anns = append(anns, fmt.Sprintf(`{"id":%d,"image_id":%d,"category_id":%d,"bbox":[2,3,%d,%d],"area":10,"iscrowd":0}`,
			i+1, 100+i, 1+i%2, w/2, h/3))
	}
	js := fmt.Sprintf(`{"images":[%s],"annotations":[%s],"categories":[{"id":1,"name":"a"},{"id":2,"name":"b"}]}`,
		strings.Join(imgs, ","), strings.Join(anns, ","))
	p := filepath.Join(dir, "ann.json")
	if err := os.WriteFile(p, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := LoadCOCO(p, dir, COCOOptions{FilterEmpty: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return ds, dir
}

func trainCfg(workers int, start int64) LoaderConfig {
	return LoaderConfig{BatchSize: 3, Workers: workers, Seed: 42, Shuffle: true, Train: true, AspectGrouping: true,
		StartIter: start, Logger: quiet,
		Transform: TransformConfig{MinSizes: []int{24, 32, 40}, MaxSize: 60, FlipProb: 0.5, SizeDivisible: 8}}
}

func take(t *testing.T, ds *Dataset, cfg LoaderConfig, n int) []*Batch {
	t.Helper()
	l, err := NewLoader(ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out []*Batch
	for len(out) < n {
		b, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestLoaderSameBatchesAnyWorkers(t *testing.T) {
	ds, _ := makeTestSet(t, 11)
	a := take(t, ds, trainCfg(1, 0), 12)
	b := take(t, ds, trainCfg(4, 0), 12)
	if len(a) != 12 || len(b) != 12 {
		t.Fatalf("%d and %d batches", len(a), len(b))
	}
	flips, sizes := 0, map[int]bool{}
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			t.Fatalf("batch %d differs between 1 and 4 workers", i)
		}
		if a[i].Iter != int64(i) {
			t.Errorf("batch %d has Iter %d", i, a[i].Iter)
		}
		for _, it := range a[i].Items {
			if it.Flipped {
				flips++
			}
			sizes[min(it.H, it.W)] = true
		}
	}
	if flips == 0 || flips == 36 || len(sizes) < 2 {
		t.Errorf("augmentation not random: %d flips of 36, short sides %v", flips, sizes)
	}
	// Infinite: epochs advance.
	if a[11].Epoch == 0 {
		t.Errorf("12 batches of 3 from 11 images still in epoch 0")
	}
}

func TestLoaderResume(t *testing.T) {
	ds, _ := makeTestSet(t, 11)
	full := take(t, ds, trainCfg(2, 0), 14)
	for _, k := range []int64{1, 3, 7, 11} {
		res := take(t, ds, trainCfg(3, k), 14-int(k))
		for i := range res {
			if !reflect.DeepEqual(res[i], full[int(k)+i]) {
				t.Fatalf("resume at %d: batch %d differs from the uninterrupted stream", k, i)
			}
		}
	}
}

func TestLoaderEpochPlans(t *testing.T) {
	ds, _ := makeTestSet(t, 11)
	l, err := NewLoader(ds, trainCfg(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p0, p1 := l.EpochPlan(0), l.EpochPlan(1)
	if reflect.DeepEqual(p0, p1) {
		t.Error("epochs not reshuffled")
	}
	if !reflect.DeepEqual(p0, l.EpochPlan(0)) || !reflect.DeepEqual(p1, l.EpochPlan(1)) {
		t.Error("plan not reproducible")
	}
	wide := func(i int) bool { return ds.Images[i].Width >= ds.Images[i].Height }
	groups := map[bool]int{}
	for i := range ds.Images {
		groups[wide(i)]++
	}
	if groups[true] == 0 || groups[false] == 0 {
		t.Fatalf("test set has one aspect group only: %v", groups)
	}
	// Over several epochs: every batch is full and of one aspect group
	// (leftovers stay in their group's bucket for the next epoch, as in
	// detectron2; never a mixed batch), and the stream of each group is the
	// concatenation of that group's images in each epoch's shuffled order,
	// so that after E epochs at most BatchSize-1 images per group wait.
	const epochs = 5
	seen := map[bool][]int{}
	for e := 0; e < epochs; e++ {
		for _, b := range l.EpochPlan(e) {
			if len(b) != 3 {
				t.Errorf("epoch %d: training batch of %d", e, len(b))
			}
			for _, i := range b {
				if wide(i) != wide(b[0]) {
					t.Errorf("epoch %d: batch %v mixes aspect groups", e, b)
					break
				}
			}
			seen[wide(b[0])] = append(seen[wide(b[0])], b...)
		}
	}
	for g, n := range groups {
		if got := len(seen[g]); got > epochs*n || got < epochs*n-2 {
			t.Errorf("group wide=%v: %d images planned in %d epochs of %d", g, got, epochs, n)
		}
	}
	// the first epoch's batches are a prefix of its permutation, per group
	if dup := func() bool {
		m := map[int]bool{}
		for _, b := range p0 {
			for _, i := range b {
				if m[i] {
					return true
				}
				m[i] = true
			}
		}
		return false
	}(); dup {
		t.Error("image twice in the first epoch")
	}
}

func TestLoaderEvalPass(t *testing.T) {
	ds, _ := makeTestSet(t, 7)
	cfg := LoaderConfig{BatchSize: 2, Workers: 3, Logger: quiet, Transform: TransformConfig{MinSizes: []int{30}, MaxSize: 50, FlipProb: 0.5}}
	bs := take(t, ds, cfg, 100)
	if len(bs) != 4 || bs[3].N != 1 {
		t.Fatalf("%d batches, last of %d", len(bs), bs[len(bs)-1].N)
	}
	k := 0
	for _, b := range bs {
		if b.H%32 != 0 || b.W%32 != 0 || len(b.Images) != b.N*3*b.H*b.W {
			t.Errorf("batch shape %d %d %d %d", b.N, b.C, b.H, b.W)
		}
		for _, it := range b.Items {
			rec := ds.Images[k]
			if it.ImageID != rec.ID || it.Index != k || it.Flipped || it.OrigW != rec.Width || it.OrigH != rec.Height {
				t.Errorf("item %d: %+v", k, it)
			}
			s, oh, ow := ResizeScale(rec.Height, rec.Width, 30, 50)
			if it.H != oh || it.W != ow || it.Scale != s {
				t.Errorf("item %d resized to %dx%d scale %v, want %dx%d %v", k, it.H, it.W, it.Scale, oh, ow, s)
			}
			if len(it.Boxes) != 1 || it.Labels[0] != rec.Labels[0] {
				t.Errorf("item %d targets %v %v", k, it.Boxes, it.Labels)
			}
			k++
		}
	}
	if k != 7 {
		t.Errorf("%d images in the pass", k)
	}
	// Resume inside an evaluation pass.
	cfg.StartIter = 2
	rest := take(t, ds, cfg, 100)
	if len(rest) != 2 || !reflect.DeepEqual(rest[0], bs[2]) {
		t.Errorf("eval resume: %d batches", len(rest))
	}
}

func TestLoaderSkipsMissingImages(t *testing.T) {
	ds, dir := makeTestSet(t, 6)
	if err := os.Remove(filepath.Join(dir, "im02.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "im04.png"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := LoaderConfig{BatchSize: 1, Workers: 2, Logger: quiet, Transform: TransformConfig{MinSizes: []int{20}, MaxSize: 40}}
	l, err := NewLoader(ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var ids []int64
	for {
		b, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.Items[0].ImageID)
	}
	if !reflect.DeepEqual(ids, []int64{100, 101, 103, 105}) || l.Skipped() != 2 {
		t.Errorf("ids %v skipped %d", ids, l.Skipped())
	}
}

func TestLoaderClose(t *testing.T) {
	ds, _ := makeTestSet(t, 5)
	before := runtime.NumGoroutine()
	l, err := NewLoader(ds, trainCfg(4, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Next(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close()
	if _, err := l.Next(); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines after Close, %d before", g, before)
	}
	if _, err := NewLoader(&Dataset{}, LoaderConfig{}); err == nil {
		t.Error("empty dataset accepted")
	}
}
