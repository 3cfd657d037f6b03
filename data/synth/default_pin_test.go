package synth

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// defaultDigest hashes the default variant's rendered pixels, objects and
// owner maps and its instances JSON, for a square and a COCO-shaped set.
func defaultDigest(t *testing.T, o Options) string {
	t.Helper()
	h := sha256.New()
	for _, split := range []string{"train", "val"} {
		n := o.Train
		if split == "val" {
			n = o.Val
		}
		for i := 0; i < n; i++ {
			sc, err := Render(o, split, i)
			if err != nil {
				t.Fatal(err)
			}
			h.Write(sc.RGB.Pix)
			fmt.Fprintf(h, "%d %d %+v\n", sc.W, sc.H, sc.Objects)
			for _, v := range sc.Owner {
				h.Write([]byte{byte(v), byte(v >> 8)})
			}
		}
	}
	dir := filepath.Join(t.TempDir(), "s")
	if err := Generate(dir, o); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{TrainAnnotations(dir), ValAnnotations(dir), filepath.Join(dir, markerName)} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestDefaultVariantPinned pins the default variant's output (pixels
// before JPEG coding, annotations, marker): adding variants or options
// must not change a single byte of it.
func TestDefaultVariantPinned(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Train: 5, Val: 3, Seed: 7, Size: 128, CrowdProb: 0.5, Workers: 2}, "a54882ea165d46db8e54dcb9ac2f73c2d7e783b386b42414d68c6ea07697e4ad"},
		{Options{Train: 3, Val: 2, Seed: 2, Size: 160, Sizes: "coco", Workers: 1}, "4f906b2494a9b80417a12ec0b7946981174197e170a84d326e4b18a6d264a803"},
	} {
		if got := defaultDigest(t, c.o); got != c.want {
			t.Errorf("%+v: digest %s, want %s", c.o, got, c.want)
		}
	}
}
