package kd

import (
	"testing"

	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/layers"
)

// Every distillation loss computes the same total and gradients in a
// planned graph (values in an arena poisoned with NaN before each run) as
// in an unplanned one.
func TestDistillerInArena(t *testing.T) {
	shapes := [][4]int{{2, 8, 24, 32}, {2, 8, 12, 16}}
	for _, loss := range []string{"ssim", "l1", "l2", "pkd", "cwd", "mgd"} {
		t.Run(loss, func(t *testing.T) {
			rig := func(a *layers.Arena) *distRig {
				rigArena = a
				defer func() { rigArena = nil }()
				r := newDistRig(t, Config{Loss: loss, Adapter: true}, []int{8, 8}, []int{8, 8}, shapes, "arena/x", "arena/t", nil)
				if loss == "mgd" {
					r.d.MaskSource = &seqSource{u: detrand.Uniform("arena/mask", 2*24*32+2*12*16)}
				}
				return r
			}
			plain := rig(nil)
			arena := layers.NewArena()
			arena.Poison = true
			planned := rig(arena)
			if _, ok := planned.m.Planned(); !ok {
				t.Fatal("not planned")
			}
			for i := 0; i < 2; i++ {
				lu, lp := plain.run(t), planned.run(t)
				if lu != lp {
					t.Fatalf("run %d: total %v unplanned, %v planned", i, lu, lp)
				}
				for j, g := range plain.grads {
					if g == nil {
						continue
					}
					gu, gp := gradData(g), gradData(planned.grads[j])
					for k := range gu {
						if gu[k] != gp[k] {
							t.Fatalf("run %d gradient %d[%d]: %v unplanned, %v planned", i, j, k, gu[k], gp[k])
						}
					}
				}
			}
		})
	}
}
