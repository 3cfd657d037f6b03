package backbone

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/internal/golden"
	"github.com/skd-go/skd/layers"
)

// FillDeterministic sets every parameter to detrand.Param(name, shape),
// the rule the golden generators use.
func fillDeterministic(reg *layers.Registry) {
	for _, p := range reg.Params() {
		copy(p.Data(), detrand.Param(p.Name, p.Shape()))
	}
}

func inputImage(shape []int) *tensor.Dense {
	tag := fmt.Sprintf("%dx%dx%dx%d", shape[0], shape[1], shape[2], shape[3])
	n := shape[0] * shape[1] * shape[2] * shape[3]
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(detrand.Symmetric("input_"+tag, n, 1)))
}

// TestResNetParityTorchvision compares C2..C5 of ResNet-18/50/101 with
// torchvision 0.14 (scripts/golden_backbone.py) on two non-square sizes.
func TestResNetParityTorchvision(t *testing.T) {
	gf, err := golden.Load("testdata/bodies")
	if err != nil {
		t.Fatal(err)
	}
	depths := []int{18, 50, 101}
	if testing.Short() {
		depths = []int{18, 50}
	}
	sizes := [][]int{{1, 3, 64, 96}, {2, 3, 96, 64}}
	for _, d := range depths {
		reg := layers.NewRegistry()
		r, err := NewResNet(reg, Config{Depth: d, WidthMult: 1, BNEps: 1e-5})
		if err != nil {
			t.Fatal(err)
		}
		fillDeterministic(reg)
		for _, s := range sizes {
			b := layers.NewBuilder(reg)
			x := b.Input("image", s...)
			outs := r.Forward(b, x)
			var kept [4]*layers.Kept
			for i, o := range outs {
				kept[i] = b.Keep(o)
			}
			if err := b.Err(); err != nil {
				t.Fatal(err)
			}
			if err := G.Let(x, inputImage(s)); err != nil {
				t.Fatal(err)
			}
			m := G.NewTapeMachine(b.G)
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			m.Close()
			tag := fmt.Sprintf("%dx%dx%dx%d", s[0], s[1], s[2], s[3])
			for i, k := range kept {
				name := fmt.Sprintf("r%d/%s/C%d", d, tag, i+2)
				ref := gf.Arrays[name]
				if ref == nil {
					t.Fatalf("golden %s missing", name)
				}
				maxErr, scale, err := ref.Compare(k.Data())
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if maxErr > 1e-4*scale {
					t.Errorf("%s: max abs error %.3g, scale %.3g (rel %.2g > 1e-4)", name, maxErr, scale, maxErr/scale)
				} else {
					t.Logf("%s: rel error %.2g", name, maxErr/scale)
				}
			}
		}
	}
}

func TestFrozenStagesMakeNoGradients(t *testing.T) {
	reg := layers.NewRegistry()
	r, err := NewResNet(reg, Config{Depth: 18, WidthMult: 0.25, FrozenStages: 2, BNEps: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range reg.Params() {
		frozen := p.Frozen
		early := len(p.Name) >= 5 && (p.Name[:5] == "conv1" || p.Name[:3] == "bn1" || p.Name[:6] == "layer1" || p.Name[:6] == "layer2")
		if p.Buffer {
			continue
		}
		if early != frozen {
			t.Errorf("%s: frozen=%v, want %v", p.Name, frozen, early)
		}
	}
	b := layers.NewBuilder(reg)
	x := b.Input("image", 1, 3, 64, 64)
	outs := r.Forward(b, x)
	if b.NeedsGrad(outs[1]) {
		t.Error("C3 of a graph with stages 1-2 frozen should need no gradient")
	}
	if !b.NeedsGrad(outs[2]) {
		t.Error("C4 should need a gradient")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{{Depth: 42, WidthMult: 1}, {Depth: 50, WidthMult: 0}, {Depth: 50, WidthMult: 1, FrozenStages: 7}} {
		if _, err := NewResNet(layers.NewRegistry(), c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// TestFullSizeParity runs when SKD_GOLDEN_FULL names a directory written by
// `scripts/golden_backbone.py --full DIR` (scripts/parity_full.sh does both).
func TestFullSizeParity(t *testing.T) {
	dir := os.Getenv("SKD_GOLDEN_FULL")
	if dir == "" {
		t.Skip("set SKD_GOLDEN_FULL (scripts/parity_full.sh)")
	}
	gf, err := golden.Load(filepath.Join(dir, "bodies"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []int{50, 101} {
		reg := layers.NewRegistry()
		r, err := NewResNet(reg, Config{Depth: d, WidthMult: 1, BNEps: 1e-5})
		if err != nil {
			t.Fatal(err)
		}
		fillDeterministic(reg)
		for _, s := range [][]int{{1, 3, 800, 1088}, {1, 3, 608, 800}} {
			b := layers.NewBuilder(reg)
			x := b.Input("image", s...)
			outs := r.Forward(b, x)
			var kept [4]*layers.Kept
			for i, o := range outs {
				kept[i] = b.Keep(o)
			}
			if err := b.Err(); err != nil {
				t.Fatal(err)
			}
			G.Let(x, inputImage(s))
			m := G.NewTapeMachine(b.G)
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			m.Close()
			tag := fmt.Sprintf("%dx%dx%dx%d", s[0], s[1], s[2], s[3])
			for i, k := range kept {
				name := fmt.Sprintf("r%d/%s/C%d", d, tag, i+2)
				maxErr, scale, err := gf.Arrays[name].Compare(k.Data())
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("ResNet-%d %s C%d: max abs error %.3g, scale %.3g, relative %.2g", d, tag, i+2, maxErr, scale, maxErr/scale)
				if maxErr > 1e-4*scale {
					t.Errorf("%s: relative error %.2g > 1e-4", name, maxErr/scale)
				}
			}
		}
	}
}
