package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// bombPNG is a 65-byte PNG whose header claims w x h pixels (one IDAT
// chunk that does not hold them).
func bombPNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		c := append([]byte(typ), data...)
		b.Write(c)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(c))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// bombJPEG is a small JPEG whose SOF header claims w x h pixels.
func bombJPEG(t *testing.T, w, h uint16) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	j := b.Bytes()
	i := bytes.Index(j, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0")
	}
	binary.BigEndian.PutUint16(j[i+5:], h)
	binary.BigEndian.PutUint16(j[i+7:], w)
	return j
}

// TestImageHeaderLimit: a tiny file whose header claims a huge image is
// refused from its header, naming the file, before any pixel buffer is
// allocated (issue 12: a 74-byte PNG claiming 60000x60000 allocated
// gigabytes); the limit is configurable.
func TestImageHeaderLimit(t *testing.T) {
	dir := t.TempDir()
	png := filepath.Join(dir, "bomb.png")
	if err := os.WriteFile(png, bombPNG(20000, 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	jpg := filepath.Join(dir, "bomb.jpg")
	if err := os.WriteFile(jpg, bombJPEG(t, 60000, 60000), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{png, jpg} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := DecodeImage(p)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "more than the limit of 178956970") {
			t.Errorf("%s: %v", p, err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
			t.Errorf("%s: %d bytes allocated to refuse it", p, d)
		}
	}
	// configurable (data.max_image_pixels); an ordinary image passes
	small := filepath.Join(dir, "small.jpg")
	var b bytes.Buffer
	m := image.NewRGBA(image.Rect(0, 0, 30, 20))
	for i := range m.Pix {
		m.Pix[i] = 200
	}
	m.Set(0, 0, color.Black)
	jpeg.Encode(&b, m, nil)
	os.WriteFile(small, b.Bytes(), 0o644)
	if _, err := DecodeImage(small); err != nil {
		t.Fatal(err)
	}
	SetMaxImagePixels(500)
	defer SetMaxImagePixels(0)
	if _, err := DecodeImage(small); err == nil || !strings.Contains(err.Error(), "30x20 = 600 pixels, more than the limit of 500") {
		t.Errorf("limit 500: %v", err)
	}
}

// TestLoaderStopsWhenNothingReadable: a training loader over a set none
// of whose images can be read returns an ErrUnreadable error naming
// examples instead of looping forever, and logs each image once (issue 12:
// training never reached iteration 1 and wrote a gigabyte of warnings).
func TestLoaderStopsWhenNothingReadable(t *testing.T) {
	ds, dir := makeTestSet(t, 5)
	for _, im := range ds.Images {
		os.WriteFile(im.Path, []byte("garbage"), 0o644)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	for _, bound := range []float64{0, 1, 0.5} {
		logged.Reset()
		cfg := LoaderConfig{BatchSize: 2, Workers: 2, Train: true, Shuffle: true, Logger: log, MaxUnreadable: bound,
			Transform: TransformConfig{MinSizes: []int{20}, MaxSize: 40}}
		l, err := NewLoader(ds, cfg)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := l.Next()
			done <- err
		}()
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			t.Fatalf("bound %v: Next did not return within a minute (endless skipping)", bound)
		}
		l.Close()
		want := "none of the 5 images can be read"
		if bound == 0.5 {
			want = "more than the allowed fraction 0.5"
		}
		if !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "e.g. decoding image "+dir) {
			t.Errorf("bound %v: %v", bound, err)
		}
		if n := strings.Count(logged.String(), "skipping unreadable image"); n > 5 {
			t.Errorf("bound %v: %d skip lines for 5 images", bound, n)
		}
	}
	// below the bound the loader goes on, logging each bad image once
	ds, _ = makeTestSet(t, 10)
	os.WriteFile(ds.Images[3].Path, []byte("garbage"), 0o644)
	logged.Reset()
	l, err := NewLoader(ds, LoaderConfig{BatchSize: 2, Workers: 2, Train: true, Logger: log, MaxUnreadable: 0.1,
		Transform: TransformConfig{MinSizes: []int{20}, MaxSize: 40}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 15; i++ { // three epochs
		if _, err := l.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logged.String(), "skipping unreadable image"); n != 1 || l.Skipped() < 3 {
		t.Errorf("%d skip lines, %d skips over three epochs", n, l.Skipped())
	}
}
