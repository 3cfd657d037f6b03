package infer

import (
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/data/synth"
	"github.com/skd-go/skd/glue"
)

// Training on real-size data (the synthetic set's COCO-size mode: many
// image shapes, hence many padded batch shapes) keeps the number of
// compiled programs at the cache bound, the arena at the largest program's
// plan, and the Go heap flat: no larger over the last third of the steps
// than over the middle third, although every step may meet a new shape.
func TestRealSizeTrainingMemoryBounded(t *testing.T) {
	if raceOn {
		t.Skip("memory figures are meaningless under the race detector")
	}
	dir := filepath.Join(t.TempDir(), "coco")
	if err := synth.Ensure(dir, synth.Options{Train: 24, Val: 6, Seed: 11, Size: 200, Sizes: "coco", Workers: 2}); err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig()
	cfg.Input.MinSize = []int{128, 144, 160}
	cfg.Input.MinSizeTest = 160
	cfg.Input.MaxSize = 260
	det := tinyModel(t, cfg)
	det.MaxPrograms = 3
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ds, err := data.LoadCOCO(synth.TrainAnnotations(dir), synth.TrainImages(dir), data.COCOOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ld, err := data.NewLoader(ds, data.LoaderConfig{BatchSize: 2, Workers: 1, Prefetch: 1, Seed: 3, Shuffle: true, Train: true,
		AspectGrouping: true, Transform: glue.Transform(cfg, true), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	const steps = 30
	shapes := map[[2]int]bool{}
	heap := make([]uint64, steps)
	peak := 0
	var ms runtime.MemStats
	for it := 0; it < steps; it++ {
		b, err := ld.Next()
		if err != nil {
			t.Fatal(err)
		}
		in := glue.TrainInput(b, nil)
		shapes[[2]int{in.H, in.W}] = true
		_, p, err := det.TrainStep(in)
		if err != nil {
			t.Fatal(err)
		}
		if det.Programs() > det.MaxPrograms {
			t.Fatalf("step %d: %d programs cached, bound %d", it, det.Programs(), det.MaxPrograms)
		}
		if st, ok := p.Machine.Planned(); !ok {
			t.Fatal("training program not planned")
		} else if st.PeakFloats > peak {
			peak = st.PeakFloats
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap[it] = ms.HeapAlloc
	}
	if len(shapes) <= 2*det.MaxPrograms {
		t.Fatalf("only %d batch shapes in %d steps: the test does not exercise eviction", len(shapes), steps)
	}
	if det.Arena.Size() != peak {
		t.Errorf("arena %d floats, largest plan %d", det.Arena.Size(), peak)
	}
	maxOf := func(h []uint64) uint64 {
		m := uint64(0)
		for _, v := range h {
			m = max(m, v)
		}
		return m
	}
	mid, last := maxOf(heap[steps/3:2*steps/3]), maxOf(heap[2*steps/3:])
	t.Logf("%d batch shapes, %d programs cached; arena %.1f MB (outside the Go heap); heap max %.1f MB over steps %d-%d, %.1f MB over %d-%d",
		len(shapes), det.Programs(), float64(det.MemoryBytes())/1e6, float64(mid)/1e6, steps/3, 2*steps/3-1, float64(last)/1e6, 2*steps/3, steps-1)
	if float64(last) > 1.1*float64(mid)+(2<<20) {
		t.Errorf("heap grew: max %d bytes over the middle third of the steps, %d over the last", mid, last)
	}
}
