package fpn

import (
	"runtime"
	"testing"

	"github.com/skd-go/skd/backbone"
)

// TestSteadyStateAllocations: after the first run, a training iteration
// (forward + backward of backbone+FPN) allocates less than 5% of the
// activation memory the graph holds.
func TestSteadyStateAllocations(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  backbone.Config
	}{
		{"frozenbn", backbone.Config{Depth: 50, WidthMult: 0.25, FrozenStages: 1, BNEps: 1e-5}},
		{"bn_train", backbone.Config{Depth: 50, WidthMult: 0.25, FrozenStages: 1, BNEps: 1e-5, Norm: "BN"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNet(t, c.cfg, 64)
			n.training = true
			r := n.build(t, []int{2, 3, 128, 160}, "2x3x128x160")
			defer r.m.Close()
			r.exec(t)
			r.exec(t)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const iters = 3
			for i := 0; i < iters; i++ {
				r.exec(t)
			}
			runtime.ReadMemStats(&after)
			perIter := float64(after.TotalAlloc-before.TotalAlloc) / iters
			// activation memory: what the first run allocated is a lower bound of
			// the graph's live tensors; use the heap in use as the measure.
			act := float64(before.HeapAlloc)
			t.Logf("allocated per iteration: %.1f KiB; heap in use %.1f MiB (%.2f%%)", perIter/1024, act/(1<<20), 100*perIter/act)
			if perIter > 0.05*act {
				t.Errorf("steady-state iteration allocates %.0f bytes, more than 5%% of %.0f", perIter, act)
			}
		})
	}
}
