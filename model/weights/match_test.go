package weights

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestSubDictAndRenamePrefix(t *testing.T) {
	w := &Tensor{Shape: []int{1}, Data: []float32{1}}
	sd := StateDict{
		"backbone.body.conv1.weight":   w,
		"backbone.body.layer1.0.bn1.b": w,
		"backbone.fpn.inner.0.weight":  w,
		"rpn.head.conv.weight":         w,
	}
	body := sd.SubDict("backbone.body.")
	if got := strings.Join(body.Keys(), ","); got != "conv1.weight,layer1.0.bn1.b" {
		t.Errorf("SubDict keys %s", got)
	}
	if body["conv1.weight"] != w {
		t.Error("SubDict copied the tensor instead of sharing it")
	}
	imagenet := StateDict{"conv1.weight": w, "fc.weight": w}
	det, err := imagenet.RenamePrefix("", "backbone.body.")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(det.Keys(), ","); got != "backbone.body.conv1.weight,backbone.body.fc.weight" {
		t.Errorf("RenamePrefix keys %s", got)
	}
	// Only keys with the prefix change.
	r, err := sd.RenamePrefix("backbone.", "student.backbone.")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Keys(), ","); got != "rpn.head.conv.weight,student.backbone.body.conv1.weight,student.backbone.body.layer1.0.bn1.b,student.backbone.fpn.inner.0.weight" {
		t.Errorf("RenamePrefix keys %s", got)
	}
	// A collision is an error naming both keys.
	_, err = StateDict{"a.x": w, "b.a.x": w}.RenamePrefix("a.", "b.a.")
	if err == nil || !strings.Contains(err.Error(), `"a.x"`) || !strings.Contains(err.Error(), `"b.a.x"`) {
		t.Errorf("collision error %v", err)
	}
}

// tinyExpected is what a model shaped like the golden tiny state dict asks for.
func tinyExpected() map[string][]int {
	return map[string][]int{
		"conv1.weight":          {4, 3, 3, 3},
		"bn1.weight":            {4},
		"bn1.bias":              {4},
		"bn1.running_mean":      {4},
		"bn1.running_var":       {4},
		"layer1.0.conv1.weight": {2, 3, 4, 1},
		"fc.weight":             {5, 3},
		"fc.bias":               {3},
	}
}

func TestMatchTinyResnet(t *testing.T) {
	p := filepath.Join("testdata", "tiny_resnet.pth")
	sd, err := LoadPth(p)
	if err != nil {
		t.Fatal(err)
	}
	// The ImageNet -> detector case: file keys get "backbone.body.", the
	// classifier head and the extras are ignored.
	exp := map[string][]int{}
	for k, s := range tinyExpected() {
		if !strings.HasPrefix(k, "fc.") {
			exp["backbone.body."+k] = s
		}
	}
	r, err := Match(exp, sd, MatchOptions{Prefix: "backbone.body.", Ignore: []string{"fc.*", "extra.*"}, Source: p})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.Matched) != 6 || len(r.Ignored) != 7 {
		t.Errorf("report not clean:\n%s\nignored %v", r.Table(), r.Ignored)
	}
	if r.From["backbone.body.conv1.weight"] != "conv1.weight" {
		t.Errorf("From = %v", r.From)
	}
	// Same weights, prefixed in the file, stripped for a bare backbone.
	pre, _ := sd.RenamePrefix("", "module.backbone.body.")
	r, err = Match(tinyExpected(), pre, MatchOptions{StripPrefixes: []string{"module.backbone.body."}, Ignore: []string{"extra.*"}})
	if err != nil || !r.OK() || len(r.Matched) != 8 {
		t.Errorf("strip prefix: err %v\n%s", err, r.Table())
	}
}

// TestMatchOtherArchitecture feeds the tiny resnet state dict to a model of
// another shape and other names: the report lists every difference and the
// shape mismatch is an error naming key, shapes and file.
func TestMatchOtherArchitecture(t *testing.T) {
	p := filepath.Join("testdata", "tiny_resnet.pth")
	sd, err := LoadPth(p)
	if err != nil {
		t.Fatal(err)
	}
	exp := map[string][]int{
		"conv1.weight":             {64, 3, 7, 7}, // other shape
		"bn1.weight":               {4},
		"bn1.bias":                 {4},
		"bn1.running_mean":         {4},
		"bn1.running_var":          {4},
		"features.0.0.weight":      {16, 3, 3, 3}, // mobilenet-style names
		"classifier.1.weight":      {1000, 1280},
		"layer1.0.conv1.weight":    {2, 3, 4, 1},
		"fc.weight":                {3, 5}, // transposed
		"fc.bias":                  {3},
		"features.0.1.num_batches": {},
	}
	r, err := Match(exp, sd, MatchOptions{Ignore: []string{"extra.*", "*.num_batches"}, Source: p})
	if err == nil {
		t.Fatalf("no error for shape mismatches:\n%s", r.Table())
	}
	for _, want := range []string{p, "2 shape mismatch", "conv1.weight: expected [64 3 7 7], got [4 3 3 3]", "fc.weight: expected [3 5], got [5 3]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if r == nil {
		t.Fatal("no report with the error")
	}
	if got := strings.Join(r.Missing, ","); got != "classifier.1.weight,features.0.0.weight" {
		t.Errorf("missing %s", got)
	}
	if len(r.Unexpected) != 0 || len(r.Matched) != 6 {
		t.Errorf("unexpected %v matched %v", r.Unexpected, r.Matched)
	}
	table := r.Table()
	t.Log("\n" + table)
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	// Summary, header, 2 mismatches, 2 missing.
	if len(lines) != 6 {
		t.Fatalf("table has %d lines:\n%s", len(lines), table)
	}
	if !strings.HasPrefix(lines[0], p+": 6 matched, 2 missing, 0 unexpected, 2 shape mismatch(es), 6 ignored") {
		t.Errorf("summary %q", lines[0])
	}
	// Columns are aligned: "KEY" starts at the same offset as every key.
	col := strings.Index(lines[1], "KEY")
	for _, l := range lines[2:] {
		if col <= 0 || len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row %q not aligned with header %q", l, lines[1])
		}
	}
	for _, want := range []string{"shape mismatch  conv1.weight", "[64 3 7 7]", "missing", "classifier.1.weight", "[1000 1280]"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}

	// Without the prefix the model expects, every key is unexpected and
	// every expected key missing.
	r, err = Match(map[string][]int{"backbone.body.conv1.weight": {4, 3, 3, 3}}, sd, MatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || len(r.Missing) != 1 || len(r.Unexpected) != len(sd) {
		t.Errorf("report %s", r.Table())
	}
	if !strings.Contains(r.Table(), "unexpected") {
		t.Errorf("table lacks unexpected rows:\n%s", r.Table())
	}
}

func TestMatchErrors(t *testing.T) {
	w := &Tensor{Shape: []int{1}, Data: []float32{1}}
	sd := StateDict{"module.a": w, "a": w}
	if _, err := Match(map[string][]int{"a": {1}}, sd, MatchOptions{StripPrefixes: []string{"module."}, Source: "x.pth"}); err == nil ||
		!strings.Contains(err.Error(), "both map to") || !strings.Contains(err.Error(), "x.pth") {
		t.Errorf("collision error %v", err)
	}
	if _, err := Match(nil, sd, MatchOptions{Ignore: []string{"[bad"}}); err == nil {
		t.Error("bad pattern accepted")
	}
}
