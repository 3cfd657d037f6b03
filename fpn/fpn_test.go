package fpn

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/backbone"
	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/internal/golden"
	"github.com/skd-go/skd/layers"
)

type net struct {
	reg  *layers.Registry
	body *backbone.ResNet
	fpn  *FPN
	// training builds training graphs (BNs with batch statistics use them)
	training bool
}

func newNet(t testing.TB, cfg backbone.Config, out int) *net {
	reg := layers.NewRegistry()
	cfg.Prefix = "backbone.body."
	body, err := backbone.NewResNet(reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(reg, "backbone.fpn.", body.OutChannels[:], out)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range reg.Params() {
		copy(p.Data(), detrand.Param(p.Name, p.Shape()))
	}
	return &net{reg: reg, body: body, fpn: f}
}

type run struct {
	m      *layers.Machine
	x      *G.Node
	kept   []*layers.Kept
	loss   *layers.Kept
	dots   []*G.Node
	grads  []*G.Node
	params []*layers.Param
}

// build makes the graph loss = sum_l sum(P_l * R_l) as the golden script.
func (n *net) build(t testing.TB, shape []int, tag string) *run {
	b := layers.NewBuilder(n.reg)
	b.Training = n.training
	x := b.Input("image", shape...)
	c := n.body.Forward(b, x)
	ps := n.fpn.Forward(b, c[:])
	r := &run{x: x}
	var loss *G.Node
	for l, p := range ps {
		r.kept = append(r.kept, b.Keep(p))
		d := b.Dot(p, detrand.Symmetric(fmt.Sprintf("grad_R_%s_%d", tag, l), p.Shape().TotalSize(), 1))
		r.dots = append(r.dots, d)
		if loss == nil {
			loss = d
		} else {
			loss = G.Must(G.Add(loss, d))
		}
	}
	r.loss = b.Keep(loss)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	nodes, params := b.TrainableNodes()
	grads, err := G.Grad(loss, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	r.grads, r.params = grads, params
	m, err := layers.NewMachine(b.G)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	img := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(detrand.Symmetric("input_"+tag, tensor.Shape(shape).TotalSize(), 1)))
	if err := G.Let(x, img); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *run) exec(t testing.TB) float64 {
	if err := r.m.Run(); err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, d := range r.dots {
		v, _ := layers.DotValue(d)
		sum += v
	}
	if math.Abs(sum-float64(r.loss.Data()[0])) > 1e-5*math.Abs(sum)+1e-3 {
		t.Fatalf("kept loss %v, sum of parts %v", r.loss.Data()[0], sum)
	}
	return sum
}

// TestR50FPNParityTorchvision: P2..P6 and the gradients of a scalar loss
// with respect to trainable parameters match torchvision's autograd.
func TestR50FPNParityTorchvision(t *testing.T) {
	gf, err := golden.Load("testdata/r50fpn")
	if err != nil {
		t.Fatal(err)
	}
	n := newNet(t, backbone.Config{Depth: 50, WidthMult: 1, FrozenStages: 1, BNEps: 1e-5}, 256)
	sizes := [][]int{{1, 3, 64, 96}, {2, 3, 96, 128}}
	if testing.Short() {
		sizes = sizes[:1]
	}
	for _, s := range sizes {
		tag := fmt.Sprintf("%dx%dx%dx%d", s[0], s[1], s[2], s[3])
		r := n.build(t, s, tag)
		loss := r.exec(t)
		for l, k := range r.kept {
			ref := gf.Arrays[fmt.Sprintf("%s/P%d", tag, l+2)]
			maxErr, scale, err := ref.Compare(k.Data())
			if err != nil {
				t.Fatal(err)
			}
			if maxErr > 1e-4*scale {
				t.Errorf("%s P%d: rel error %.2g", tag, l+2, maxErr/scale)
			}
		}
		refLoss := float64(gf.Arrays[tag+"/loss"].Data[0])
		if math.Abs(loss-refLoss) > 1e-4*math.Abs(refLoss) {
			t.Errorf("%s loss %v, torchvision %v", tag, loss, refLoss)
		}
		checked := 0
		for i, p := range r.params {
			ref := gf.Arrays[tag+"/grad/"+p.Name]
			if ref == nil {
				continue
			}
			checked++
			maxErr, scale, err := ref.Compare(r.grads[i].Value().Data().([]float32))
			if err != nil {
				t.Fatal(err)
			}
			if maxErr > 1e-4*scale {
				t.Errorf("%s grad %s: rel error %.2g", tag, p.Name, maxErr/scale)
			}
		}
		if checked < 20 {
			t.Errorf("only %d gradients compared", checked)
		}
		for _, p := range n.reg.Params() {
			if strings.HasPrefix(p.Name, "backbone.body.layer1.") && p.Trainable() {
				t.Errorf("%s should be frozen (trainable_layers=3)", p.Name)
			}
		}
		r.m.Close()
	}
}

// TestBackboneFPNFiniteDifferences checks the gradients of a tiny
// ResNet+FPN end to end against central differences.
func TestBackboneFPNFiniteDifferences(t *testing.T) {
	n := newNet(t, backbone.Config{Depth: 18, WidthMult: 0.125, FrozenStages: 0, BNEps: 1e-5}, 8)
	shape := []int{1, 3, 64, 64}
	r := n.build(t, shape, "1x3x64x64")
	r.exec(t)
	analytic := make([][]float32, len(r.grads))
	for i, g := range r.grads {
		analytic[i] = append([]float32(nil), g.Value().Data().([]float32)...)
	}
	checked := 0
	for i, p := range r.params {
		if !(strings.Contains(p.Name, "conv1.weight") || strings.Contains(p.Name, "fpn")) {
			continue
		}
		an := analytic[i]
		d := p.Data()
		for _, j := range []int{0, len(d) / 2, len(d) - 1} {
			orig := d[j]
			const eps = 1e-3
			d[j] = orig + eps
			lp := r.exec(t)
			d[j] = orig - eps
			lm := r.exec(t)
			d[j] = orig
			fd := (lp - lm) / (2 * eps)
			if math.Abs(fd-float64(an[j])) > 3e-2*(1+math.Abs(fd)) {
				t.Errorf("%s[%d]: analytic %.5g, finite difference %.5g", p.Name, j, an[j], fd)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d entries checked", checked)
	}
}

// TestFullSizeParity runs when SKD_GOLDEN_FULL names a directory written by
// `scripts/golden_backbone.py --full DIR` (scripts/parity_full.sh does both).
func TestFullSizeParity(t *testing.T) {
	dir := os.Getenv("SKD_GOLDEN_FULL")
	if dir == "" {
		t.Skip("set SKD_GOLDEN_FULL (scripts/parity_full.sh)")
	}
	gf, err := golden.Load(filepath.Join(dir, "r50fpn"))
	if err != nil {
		t.Fatal(err)
	}
	n := newNet(t, backbone.Config{Depth: 50, WidthMult: 1, FrozenStages: 1, BNEps: 1e-5}, 256)
	for _, s := range [][]int{{2, 3, 512, 512}, {1, 3, 800, 1216}} {
		tag := fmt.Sprintf("%dx%dx%dx%d", s[0], s[1], s[2], s[3])
		r := n.build(t, s, tag)
		r.exec(t)
		for l, k := range r.kept {
			ref := gf.Arrays[fmt.Sprintf("%s/P%d", tag, l+2)]
			maxErr, scale, err := ref.Compare(k.Data())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("R50-FPN %s P%d: max abs error %.3g, scale %.3g, relative %.2g", tag, l+2, maxErr, scale, maxErr/scale)
			if maxErr > 1e-4*scale {
				t.Errorf("%s P%d: relative error %.2g > 1e-4", tag, l+2, maxErr/scale)
			}
		}
		worst := 0.0
		for i, p := range r.params {
			ref := gf.Arrays[tag+"/grad/"+p.Name]
			if ref == nil {
				continue
			}
			maxErr, scale, err := ref.Compare(r.grads[i].Value().Data().([]float32))
			if err != nil {
				t.Fatal(err)
			}
			worst = math.Max(worst, maxErr/scale)
			// At full size a few pre-activations sit within float32 noise
			// of a ReLU kink, and one flipped mask entry moves every
			// gradient upstream of it by up to ~1e-2 of its scale (seen:
			// one entry of layer4.0's output, 0 in torchvision, 0.44 here,
			// at 2x256x256). Features agree to 1e-6; gradients get 2e-2.
			if maxErr > 2e-2*scale {
				t.Errorf("%s grad %s: relative error %.2g", tag, p.Name, maxErr/scale)
			}
		}
		t.Logf("R50-FPN %s gradients: worst relative error %.2g", tag, worst)
		r.m.Close()
	}
}
