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

// TestBatchNormTrainParityTorchvision: ResNet-18 with norm "BN" in a
// training graph against torchvision's resnet18 (nn.BatchNorm2d) in train
// mode: C2..C5, gradients of sum(C5 * R) and the updated running statistics
// (scripts/golden_backbone.py). The reference is torch in float64: BN
// backward cancels terms, and torch's own float32 stem gradients are 1e-3
// (relative) off it; ours, with float64 statistics, are within 1e-5.
func TestBatchNormTrainParityTorchvision(t *testing.T) {
	gf, err := golden.Load("testdata/bodies_bn")
	if err != nil {
		t.Fatalf("%v (regenerate with /usr/bin/python3 scripts/golden_backbone.py)", err)
	}
	reg := layers.NewRegistry()
	r, err := NewResNet(reg, Config{Depth: 18, WidthMult: 1, BNEps: 1e-5, Norm: "BN"})
	if err != nil {
		t.Fatal(err)
	}
	fillDeterministic(reg)
	s := []int{2, 3, 64, 96}
	tag := "2x3x64x96"
	b := layers.NewBuilder(reg)
	b.Training = true
	x := b.Input("image", s...)
	outs := r.Forward(b, x)
	var kept [4]*layers.Kept
	for i, o := range outs {
		kept[i] = b.Keep(o)
	}
	loss := b.Dot(outs[3], detrand.Symmetric("grad_R_"+tag, outs[3].Shape().TotalSize(), 1))
	names := []string{"conv1.weight", "bn1.weight", "layer1.0.bn1.weight", "layer2.0.downsample.1.bias",
		"layer3.1.conv1.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias"}
	var wrt []*G.Node
	for _, n := range names {
		wrt = append(wrt, b.Param(reg.Get(n)))
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	if err := G.Let(x, inputImage(s)); err != nil {
		t.Fatal(err)
	}
	m, err := layers.NewMachine(b.G)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	check := func(name string, got []float32, rel float64) {
		t.Helper()
		ref := gf.Arrays[name]
		if ref == nil {
			t.Fatalf("golden %s missing", name)
		}
		maxErr, scale, err := ref.Compare(got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if maxErr > rel*scale {
			t.Errorf("%s: max abs error %.3g, scale %.3g (rel %.2g > %g)", name, maxErr, scale, maxErr/scale, rel)
		} else {
			t.Logf("%s: rel error %.2g", name, maxErr/scale)
		}
	}
	for i, k := range kept {
		check(fmt.Sprintf("%s/C%d", tag, i+2), k.Data(), 1e-4)
	}
	for i, n := range names {
		check(tag+"/grad/"+n, grads[i].Value().Data().([]float32), 1e-4)
	}
	for _, n := range []string{"bn1", "layer2.0.downsample.1", "layer4.1.bn2"} {
		for _, st := range []string{"running_mean", "running_var"} {
			check(tag+"/"+n+"."+st, reg.Get(n+"."+st).Data(), 1e-5)
		}
	}
}

// TestNormBNKeepsFrozenStagesFrozen: with norm "BN", the trainable stages'
// BNs use batch statistics and the frozen ones stay FrozenBatchNorm2d
// (detectron2's rule); an unknown norm is an error.
func TestNormBNKeepsFrozenStagesFrozen(t *testing.T) {
	reg := layers.NewRegistry()
	if _, err := NewResNet(reg, Config{Depth: 18, WidthMult: 0.25, FrozenStages: 1, BNEps: 1e-5, Norm: "BN"}); err != nil {
		t.Fatal(err)
	}
	frozen := []string{"bn1.weight", "layer1.0.bn1.weight", "layer1.1.bn2.bias"}
	trained := []string{"layer2.0.bn1.weight", "layer2.0.downsample.1.bias", "layer4.1.bn2.weight"}
	for _, n := range frozen {
		if reg.Get(n).Trainable() {
			t.Errorf("%s trainable in a frozen stage", n)
		}
	}
	for _, n := range trained {
		if p := reg.Get(n); !p.Trainable() || !p.NoDecay {
			t.Errorf("%s: trainable %v, no decay %v; want both", n, p.Trainable(), p.NoDecay)
		}
	}
	if _, err := NewResNet(layers.NewRegistry(), Config{Depth: 18, WidthMult: 1, Norm: "GN"}); err == nil {
		t.Error("norm GN accepted")
	}
}
