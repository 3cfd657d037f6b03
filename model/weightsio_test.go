package model

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skd-go/skd/backbone"
	"github.com/skd-go/skd/fpn"
	"github.com/skd-go/skd/layers"
	"github.com/skd-go/skd/model/weights"
)

func tinyBackbone(t *testing.T) *layers.Registry {
	reg := layers.NewRegistry()
	body, err := backbone.NewResNet(reg, backbone.Config{Depth: 18, WidthMult: 0.125, FrozenStages: 1, BNEps: 1e-5, Prefix: "backbone.body."})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fpn.New(reg, "backbone.fpn.", body.OutChannels[:], 16)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	body.Init(rng)
	f.Init(rng)
	return reg
}

func TestSaveLoadRoundTrip(t *testing.T) {
	reg := tinyBackbone(t)
	p := filepath.Join(t.TempDir(), "w.safetensors")
	if err := SaveWeights(reg, p, map[string]string{"arch": "r18"}); err != nil {
		t.Fatal(err)
	}
	reg2 := tinyBackbone(t)
	for _, prm := range reg2.Params() {
		for i := range prm.Data() {
			prm.Data()[i] = 0
		}
	}
	rep, err := LoadWeights(reg2, p, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Matched) != len(reg.Params()) {
		t.Fatalf("matched %d of %d", len(rep.Matched), len(reg.Params()))
	}
	for _, prm := range reg.Params() {
		got := reg2.Get(prm.Name).Data()
		for i, v := range prm.Data() {
			if got[i] != v {
				t.Fatalf("%s[%d] = %v, saved %v", prm.Name, i, got[i], v)
			}
		}
	}
}

// Bad weights: another architecture, a truncated file, not a pickle.
func TestBadWeightsFiles(t *testing.T) {
	dir := "weights/testdata"
	cases := map[string]string{
		"tiny_resnet.pth": "missing", // another architecture
		"random.bin":      "random.bin",
		"no_pickle.pth":   "no_pickle.pth",
		"list.pth":        "list.pth",
	}
	for file, want := range cases {
		reg := tinyBackbone(t)
		_, err := LoadWeights(reg, filepath.Join(dir, file), LoadOptions{})
		if err == nil {
			t.Errorf("%s: no error", file)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not mention %q", file, err, want)
		}
	}
	// truncated copy of a valid file
	raw, err := os.ReadFile(filepath.Join(dir, "tiny_resnet.pth"))
	if err != nil {
		t.Fatal(err)
	}
	tr := filepath.Join(t.TempDir(), "trunc.pth")
	os.WriteFile(tr, raw[:len(raw)/2], 0o644)
	if _, err := LoadWeights(tinyBackbone(t), tr, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "trunc.pth") {
		t.Errorf("truncated file: %v", err)
	}
	// a shape mismatch names the key
	reg := tinyBackbone(t)
	p := filepath.Join(t.TempDir(), "w.safetensors")
	SaveWeights(reg, p, nil)
	reg3 := layers.NewRegistry()
	backbone.NewResNet(reg3, backbone.Config{Depth: 18, WidthMult: 0.25, BNEps: 1e-5, Prefix: "backbone.body."})
	if _, err := LoadWeights(reg3, p, LoadOptions{AllowMissing: []string{"*"}}); err == nil || !strings.Contains(err.Error(), "backbone.body.conv1.weight") {
		t.Errorf("shape mismatch: %v", err)
	}
}

func TestLegacyFPNKeys(t *testing.T) {
	reg := tinyBackbone(t)
	p := filepath.Join(t.TempDir(), "w.safetensors")
	if err := SaveWeights(reg, p, nil); err != nil {
		t.Fatal(err)
	}
	sd, _, err := ReadStateDict(p)
	if err != nil {
		t.Fatal(err)
	}
	// rename to torchvision < 0.13 names
	old := sd["backbone.fpn.inner_blocks.0.0.weight"]
	delete(sd, "backbone.fpn.inner_blocks.0.0.weight")
	sd["backbone.fpn.inner_blocks.0.weight"] = old
	if _, err := LoadStateDict(tinyBackbone(t), sd, "legacy", LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}

// An ImageNet ResNet state dict (torchvision names without a prefix, plus
// the fc classifier and num_batches_tracked-free BN buffers) initialises
// the detector's backbone with Prefix "backbone.body." and Ignore "fc.*";
// the detector's other parts keep their values.
func TestLoadImageNetBackbone(t *testing.T) {
	cfg := Defaults()
	cfg.Backbone.Depth, cfg.Backbone.WidthMult = 18, 0.125
	cfg.FPNChannels, cfg.RoI.RepresentationSize, cfg.RoI.NumClasses = 16, 32, 3
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sd := weights.StateDict{}
	for _, p := range d.Reg.Params() {
		if strings.HasPrefix(p.Name, "backbone.body.") {
			vals := make([]float32, len(p.Data()))
			for i := range vals {
				vals[i] = float32(i%7) + 0.5
			}
			sd[strings.TrimPrefix(p.Name, "backbone.body.")] = &weights.Tensor{Shape: p.Shape(), Data: vals}
		}
	}
	sd["fc.weight"] = &weights.Tensor{Shape: []int{10, 64}, Data: make([]float32, 640)}
	sd["fc.bias"] = &weights.Tensor{Shape: []int{10}, Data: make([]float32, 10)}
	opts := LoadOptions{AllowMissing: []string{"*"}}
	opts.Prefix = "backbone.body."
	opts.Ignore = []string{"fc.*"}
	rep, err := LoadStateDict(d.Reg, sd, "resnet18-imagenet.pth", opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Matched) != len(sd)-2 || len(rep.Unexpected) != 0 {
		t.Fatalf("matched %d of %d, unexpected %v", len(rep.Matched), len(sd)-2, rep.Unexpected)
	}
	if got := d.Reg.Get("backbone.body.layer1.0.conv1.weight").Data()[3]; got != 3.5 {
		t.Errorf("backbone weight not loaded: %v", got)
	}
	if v := d.Reg.Get("rpn.head.cls_logits.weight").Data()[0]; v != 0 {
		t.Errorf("RPN head changed: %v", v)
	}
}
