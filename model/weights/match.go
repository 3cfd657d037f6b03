package weights

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
)

// MatchOptions says how state-dict keys map onto a model's parameter names.
type MatchOptions struct {
	// StripPrefixes are removed from the start of state-dict keys before
	// matching (the first one that fits), e.g. "module." left by
	// DataParallel or "backbone.body." to take a backbone out of a detector.
	StripPrefixes []string
	// Prefix is then prepended to every state-dict key, e.g. "backbone.body."
	// to load ImageNet resnet50 keys ("conv1.weight") into a detector.
	Prefix string
	// Ignore holds path.Match patterns ("*" matches dots too): a key that
	// matches, on either side (expected names, or state-dict keys after
	// renaming), is left out of the comparison, e.g. "fc.*" for an ImageNet
	// classifier head or "*.num_batches_tracked".
	Ignore []string
	// Source names the weights (usually the file) in errors and tables.
	Source string
}

// ShapeMismatch is a key present on both sides with different shapes.
type ShapeMismatch struct {
	Key      string // the model's name
	From     string // the state dict's original key
	Expected []int
	Got      []int
}

// Report is the outcome of Match. Keys are the model's names (after
// stripping and prefixing); every list is sorted.
type Report struct {
	Source     string
	Matched    []string          // same name and shape on both sides
	Missing    []string          // expected by the model, absent from the state dict
	Unexpected []string          // in the state dict, not expected by the model
	Mismatched []ShapeMismatch   // on both sides with different shapes
	Ignored    []string          // left out by MatchOptions.Ignore
	From       map[string]string // model name -> original state-dict key, for every matched name

	expected map[string][]int // for Table
	got      map[string][]int // by model name, for Table
}

// OK reports whether every expected key was found with the right shape and
// nothing unexpected was left over.
func (r *Report) OK() bool {
	return len(r.Missing) == 0 && len(r.Unexpected) == 0 && len(r.Mismatched) == 0
}

// Match compares a model's expected parameters (name -> shape) with a state
// dict, after renaming the state dict's keys as opts says. Missing and
// unexpected keys are only reported (the caller decides whether to be
// strict); shape mismatches are also an error that names every mismatched
// key, both shapes and the source. Two state-dict keys that rename to the
// same name are an error too.
func Match(expected map[string][]int, sd StateDict, opts MatchOptions) (*Report, error) {
	src := opts.Source
	if src == "" {
		src = "state dict"
	}
	for _, pat := range opts.Ignore {
		if _, err := path.Match(pat, ""); err != nil {
			return nil, fmt.Errorf("weights: %s: bad ignore pattern %q: %v", src, pat, err)
		}
	}
	ignored := func(k string) bool {
		for _, pat := range opts.Ignore {
			if ok, _ := path.Match(pat, k); ok {
				return true
			}
		}
		return false
	}
	r := &Report{Source: src, From: map[string]string{}, expected: expected, got: map[string][]int{}}
	renamed := map[string]string{} // model name -> original key
	for _, k := range sd.Keys() {
		name := k
		for _, p := range opts.StripPrefixes {
			if p != "" && strings.HasPrefix(name, p) {
				name = strings.TrimPrefix(name, p)
				break
			}
		}
		name = opts.Prefix + name
		if prev, dup := renamed[name]; dup {
			return nil, fmt.Errorf("weights: %s: keys %q and %q both map to %q", src, prev, k, name)
		}
		renamed[name] = k
		r.got[name] = sd[k].Shape
	}
	for name, k := range renamed {
		if ignored(name) || ignored(k) {
			r.Ignored = append(r.Ignored, k)
			continue
		}
		want, ok := expected[name]
		if !ok {
			r.Unexpected = append(r.Unexpected, name)
			continue
		}
		got := sd[k].Shape
		if !sameShape(want, got) {
			r.Mismatched = append(r.Mismatched, ShapeMismatch{Key: name, From: k, Expected: want, Got: got})
			continue
		}
		r.Matched = append(r.Matched, name)
		r.From[name] = k
	}
	for name := range expected {
		if _, ok := renamed[name]; ok {
			continue
		}
		if ignored(name) {
			r.Ignored = append(r.Ignored, name)
			continue
		}
		r.Missing = append(r.Missing, name)
	}
	sort.Strings(r.Matched)
	sort.Strings(r.Missing)
	sort.Strings(r.Unexpected)
	sort.Strings(r.Ignored)
	sort.Slice(r.Mismatched, func(i, j int) bool { return r.Mismatched[i].Key < r.Mismatched[j].Key })
	if len(r.Mismatched) > 0 {
		parts := make([]string, len(r.Mismatched))
		for i, m := range r.Mismatched {
			parts[i] = fmt.Sprintf("%s: expected %s, got %s", m.Key, ShapeString(m.Expected), ShapeString(m.Got))
			if m.From != m.Key {
				parts[i] += fmt.Sprintf(" (file key %s)", m.From)
			}
		}
		return r, fmt.Errorf("weights: %s: %d shape mismatch(es): %s", src, len(r.Mismatched), strings.Join(parts, "; "))
	}
	return r, nil
}

// Summary is a one-line count of the report.
func (r *Report) Summary() string {
	return fmt.Sprintf("%s: %d matched, %d missing, %d unexpected, %d shape mismatch(es), %d ignored",
		r.Source, len(r.Matched), len(r.Missing), len(r.Unexpected), len(r.Mismatched), len(r.Ignored))
}

// Table prints the summary line, then one aligned row per missing,
// unexpected or mismatched key (matched and ignored keys are only counted).
func (r *Report) Table() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	if r.OK() {
		return b.String()
	}
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "STATUS\tKEY\tEXPECTED\tGOT")
	for _, m := range r.Mismatched {
		fmt.Fprintf(w, "shape mismatch\t%s\t%s\t%s\n", m.Key, ShapeString(m.Expected), ShapeString(m.Got))
	}
	for _, k := range r.Missing {
		fmt.Fprintf(w, "missing\t%s\t%s\t-\n", k, ShapeString(r.expected[k]))
	}
	for _, k := range r.Unexpected {
		fmt.Fprintf(w, "unexpected\t%s\t-\t%s\n", k, ShapeString(r.got[k]))
	}
	w.Flush()
	return b.String()
}
