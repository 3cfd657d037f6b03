// Package model assembles detectors from the project's parts, as
// torchvision's GeneralizedRCNN (fasterrcnn.go; each stage owns its head,
// targets and losses: packages rpn, roihead; the program cache and compile
// step are program.go), and moves their weights in and out: torchvision
// `.pth` state dicts and the project's own safetensors checkpoints.
package model

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/skd-go/skd/layers"
	"github.com/skd-go/skd/model/weights"
)

// LoadOptions says how a weights file maps onto a model's parameters.
type LoadOptions struct {
	weights.MatchOptions
	// AllowMissing holds path.Match patterns of model parameters that may
	// be absent from the file (they keep their initial values), e.g.
	// "rpn.*" and "roi_heads.*" when only a backbone is loaded.
	AllowMissing []string
}

// Format names a weights file format.
type Format string

// Known formats.
const (
	FormatPth         Format = "pth"
	FormatSafetensors Format = "safetensors"
)

// DetectFormat looks at a file's first bytes: a zip (torch >= 1.6), a
// pickle (legacy torch.save) or a safetensors header.
func DetectFormat(p string) (Format, error) {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return "", fmt.Errorf("weights %s is a directory: pass a weights file (e.g. %s)", p, path.Join(filepath.ToSlash(p), "model.safetensors"))
	}
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("weights %s: %w", p, err)
	}
	defer f.Close()
	head := make([]byte, 16)
	n, _ := f.Read(head)
	head = head[:n]
	switch {
	case n == 0:
		return "", fmt.Errorf("weights %s: empty file", p)
	case bytes.HasPrefix(head, []byte("PK")):
		return FormatPth, nil
	case head[0] == 0x80: // pickle protocol marker
		return FormatPth, nil
	case n >= 9 && head[8] == '{':
		return FormatSafetensors, nil
	}
	return "", fmt.Errorf("weights %s: neither a PyTorch .pth (zip or pickle) nor a safetensors file", p)
}

// ReadStateDict loads a .pth or safetensors file, detected from its bytes.
func ReadStateDict(p string) (weights.StateDict, map[string]string, error) {
	format, err := DetectFormat(p)
	if err != nil {
		return nil, nil, err
	}
	if format == FormatSafetensors {
		return weights.LoadSafetensors(p)
	}
	sd, err := weights.LoadPth(p)
	return sd, nil, err
}

var legacyFPN = regexp.MustCompile(`^(.*fpn\.(?:inner|layer)_blocks\.\d+)\.(weight|bias)$`)

// upgradeKeys renames torchvision < 0.13 FPN keys (`inner_blocks.0.weight`)
// to 0.14's (`inner_blocks.0.0.weight`), as torchvision's own
// _load_from_state_dict does.
func upgradeKeys(sd weights.StateDict) weights.StateDict {
	out := make(weights.StateDict, len(sd))
	for k, v := range sd {
		if m := legacyFPN.FindStringSubmatch(k); m != nil {
			k = m[1] + ".0." + m[2]
		}
		out[k] = v
	}
	return out
}

// LoadWeights copies a weights file into reg. Shape mismatches and
// missing parameters (unless allowed) are errors that carry the report's
// table; unexpected keys are listed in the report.
func LoadWeights(reg *layers.Registry, p string, opts LoadOptions) (*weights.Report, error) {
	sd, _, err := ReadStateDict(p)
	if err != nil {
		return nil, err
	}
	return LoadStateDict(reg, sd, p, opts)
}

// LoadStateDict is LoadWeights for a state dict already in memory.
func LoadStateDict(reg *layers.Registry, sd weights.StateDict, source string, opts LoadOptions) (*weights.Report, error) {
	if opts.Source == "" {
		opts.Source = source
	}
	sd = upgradeKeys(sd)
	rep, err := weights.Match(reg.Shapes(), sd, opts.MatchOptions)
	if err != nil {
		if rep != nil {
			return rep, fmt.Errorf("%w\n%s", err, rep.Table())
		}
		return nil, err
	}
	var missing []string
	for _, name := range rep.Missing {
		allowed := false
		for _, pat := range opts.AllowMissing {
			if ok, _ := path.Match(pat, name); ok {
				allowed = true
				break
			}
		}
		if !allowed {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		more := ""
		if len(missing) > 8 {
			more = fmt.Sprintf(" and %d more", len(missing)-8)
			missing = missing[:8]
		}
		return rep, fmt.Errorf("weights %s do not fit this model: missing %s%s (%d of %d parameters matched; is it the right architecture?)\n%s",
			source, strings.Join(missing, ", "), more, len(rep.Matched), len(reg.Params()), rep.Table())
	}
	if err := checkFinite(sd, rep, source); err != nil {
		return rep, err
	}
	for _, name := range rep.Matched {
		t := sd[rep.From[name]]
		if err := reg.Set(name, t.Shape, t.Data); err != nil {
			return rep, fmt.Errorf("weights %s: %w", source, err)
		}
	}
	return rep, nil
}

// SaveWeights writes every parameter and buffer of reg as safetensors
// (atomically: temp file, fsync, rename).
func SaveWeights(reg *layers.Registry, p string, meta map[string]string) error {
	sd := make(weights.StateDict, len(reg.Params()))
	for _, prm := range reg.Params() {
		sd[prm.Name] = &weights.Tensor{Shape: append([]int(nil), prm.Shape()...), Data: prm.Data()}
	}
	return weights.SaveSafetensors(p, sd, meta)
}

// checkFinite refuses weights holding NaN or Inf in a tensor the model
// uses: loaded silently, they make a detector that finds nothing.
func checkFinite(sd weights.StateDict, rep *weights.Report, source string) error {
	var bad []string
	total := 0
	for _, name := range rep.Matched {
		key := rep.From[name]
		n := 0
		for _, v := range sd[key].Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				n++
			}
		}
		if n > 0 {
			total++
			if len(bad) < 3 {
				bad = append(bad, fmt.Sprintf("%s (%d of %d values)", key, n, len(sd[key].Data)))
			}
		}
	}
	if total == 0 {
		return nil
	}
	sort.Strings(bad)
	more := ""
	if total > len(bad) {
		more = fmt.Sprintf(" and %d more tensors", total-len(bad))
	}
	return fmt.Errorf("weights %s hold NaN or Inf values in %s%s: the model would detect nothing (saved from a diverged run?)",
		source, strings.Join(bad, ", "), more)
}
