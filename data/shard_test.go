package data

import (
	"reflect"
	"strings"
	"testing"
)

func TestShardBatch(t *testing.T) {
	b := []int{7, 3, 9, 1}
	var all []int
	for r := 0; r < 2; r++ {
		idx, off := ShardBatch(b, r, 2)
		if off != 2*r || len(idx) != 2 {
			t.Fatalf("rank %d: %v at %d", r, idx, off)
		}
		all = append(all, idx...)
	}
	if !reflect.DeepEqual(all, b) {
		t.Fatalf("slices %v, batch %v", all, b)
	}
	// an uneven evaluation batch: 3 images over 2 ranks
	i0, _ := ShardBatch([]int{1, 2, 3}, 0, 2)
	i1, o1 := ShardBatch([]int{1, 2, 3}, 1, 2)
	if len(i0)+len(i1) != 3 || o1 != len(i0) {
		t.Fatalf("uneven split %v %v", i0, i1)
	}
	if err := CheckShard(4, 0, 3); err == nil || !strings.Contains(err.Error(), "not divisible by the world size 3") {
		t.Fatalf("4 images over 3 ranks: %v", err)
	}
	if err := CheckShard(4, 1, 2); err != nil {
		t.Fatal(err)
	}
}

// TestShardedLoaderEqualsOneProcess: the slices of 2 ranks, padded to the
// global batch shape, are exactly the one-process batches (images, order,
// random sizes and flips, boxes).
func TestShardedLoaderEqualsOneProcess(t *testing.T) {
	ds, _ := makeTestSet(t, 12)
	base := LoaderConfig{BatchSize: 4, Workers: 2, Seed: 11, Shuffle: true, Train: true, AspectGrouping: true, Logger: quiet,
		Transform: TransformConfig{MinSizes: []int{16, 24, 32}, MaxSize: 48, SizeDivisible: 8, FlipProb: 0.5}}
	one, err := NewLoader(ds, base)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	var ranks [2]*Loader
	for r := range ranks {
		c := base
		c.Rank, c.WorldSize = r, 2
		if ranks[r], err = NewLoader(ds, c); err != nil {
			t.Fatal(err)
		}
		defer ranks[r].Close()
	}
	flips := 0
	for it := 0; it < 7; it++ {
		want, err := one.Next()
		if err != nil {
			t.Fatal(err)
		}
		var parts [2]*Batch
		for r := range parts {
			if parts[r], err = ranks[r].Next(); err != nil {
				t.Fatal(err)
			}
			if parts[r].Iter != want.Iter || parts[r].N != 2 {
				t.Fatalf("iter %d rank %d: batch iter %d with %d images", it, r, parts[r].Iter, parts[r].N)
			}
		}
		for r := range parts {
			if err := PadTo(parts[r], want.H, want.W); err != nil {
				t.Fatal(err)
			}
			sz := 2 * want.C * want.H * want.W
			if !reflect.DeepEqual(parts[r].Images, want.Images[r*sz:(r+1)*sz]) {
				t.Fatalf("iter %d rank %d: pixels differ from the one-process batch", it, r)
			}
			for k, item := range parts[r].Items {
				if !reflect.DeepEqual(item, want.Items[2*r+k]) {
					t.Fatalf("iter %d rank %d image %d: %+v, one process %+v", it, r, k, item, want.Items[2*r+k])
				}
				if item.Flipped {
					flips++
				}
			}
		}
	}
	if flips == 0 {
		t.Fatal("no image was flipped: the test does not exercise the per-sample streams")
	}
	bad := base
	bad.Rank, bad.WorldSize = 0, 3
	if _, err := NewLoader(ds, bad); err == nil {
		t.Fatal("a world size that does not divide the batch was accepted")
	}
}

func TestPadTo(t *testing.T) {
	b := &Batch{N: 1, C: 1, H: 2, W: 2, Images: []float32{1, 2, 3, 4}}
	if err := PadTo(b, 3, 3); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b.Images, []float32{1, 2, 0, 3, 4, 0, 0, 0, 0}) {
		t.Fatalf("%v", b.Images)
	}
	if err := PadTo(b, 2, 3); err == nil {
		t.Fatal("shrinking accepted")
	}
}
