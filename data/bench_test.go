package data

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/data/synth"
)

// benchSet writes n COCO-sized (640x480) JPEGs rendered by the synthetic
// generator and returns the dataset.
func benchSet(b *testing.B, n int) *Dataset {
	b.Helper()
	dir := b.TempDir()
	var imgs []string
	for i := 0; i < n; i++ {
		sc, err := synth.Render(synth.Options{Train: n, Seed: 5, Size: 640}, "train", i)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, sc.RGB.SubImage(image.Rect(0, 0, 640, 480)), &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("%03d.jpg", i)
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		imgs = append(imgs, fmt.Sprintf(`{"id":%d,"file_name":%q,"width":640,"height":480}`, i+1, name))
	}
	js := `{"images":[` + strings.Join(imgs, ",") + `],"annotations":[],"categories":[{"id":1,"name":"x"}]}`
	ds, err := ParseCOCO([]byte(js), "bench.json", dir, COCOOptions{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	return ds
}

// BenchmarkLoader measures images/s decoded (640x480 JPEG), flipped,
// normalised, resized to 800x1066 (min 800, max 1333) and batched (2 per
// batch, padded to 32) with 2 workers.
func BenchmarkLoader(b *testing.B) {
	ds := benchSet(b, 16)
	l, err := NewLoader(ds, LoaderConfig{BatchSize: 2, Workers: 2, Seed: 1, Shuffle: true, Train: true, Logger: quiet,
		Transform: TransformConfig{MinSizes: []int{800}, MaxSize: 1333, FlipProb: 0.5}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Next(); err != nil { // warm the queue
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bt, err := l.Next()
		if err != nil {
			b.Fatal(err)
		}
		if bt.H != 800 || bt.W != 1088 {
			b.Fatalf("batch %dx%d", bt.H, bt.W)
		}
	}
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkStages times one image's decode and transform on one goroutine.
func BenchmarkStages(b *testing.B) {
	ds := benchSet(b, 1)
	b.Run("decode640x480", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := DecodeImage(ds.Images[0].Path); err != nil {
				b.Fatal(err)
			}
		}
	})
	img, err := DecodeImage(ds.Images[0].Path)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("transform800x1066", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := TransformSample(img, nil, nil, TransformConfig{}, false, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
