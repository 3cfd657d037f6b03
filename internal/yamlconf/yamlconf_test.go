package yamlconf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Test schema.

type anchors struct {
	Sizes  []int     `yaml:"sizes"`
	Ratios []float64 `yaml:"ratios"`
}

type modelCfg struct {
	Arch       string     `yaml:"arch"`
	NumClasses int        `yaml:"num_classes"`
	Mean       [3]float32 `yaml:"mean"`
	Anchors    anchors    `yaml:"anchors"`
}

type warmup struct {
	Iters  int     `yaml:"iters"`
	Factor float64 `yaml:"factor"`
}

type solverCfg struct {
	LearningRate float64 `yaml:"learning_rate"`
	MaxIter      int     `yaml:"max_iter"`
	Steps        []int   `yaml:"steps"`
	Warmup       *warmup `yaml:"warmup,omitempty"`
}

type dataset struct {
	Path string `yaml:"path"`
	Year string `yaml:"year"`
}

type common struct {
	Seed   int    `yaml:"seed"`
	Device string `yaml:"device"`
}

type testCfg struct {
	common   `yaml:",inline"`
	Name     string             `yaml:"name"`
	Model    modelCfg           `yaml:"model"`
	Solver   solverCfg          `yaml:"solver"`
	Teacher  *modelCfg          `yaml:"teacher,omitempty"`
	Datasets map[string]dataset `yaml:"datasets,omitempty"`
	Secret   string             `yaml:"-"`
	Extra    any                `yaml:"extra,omitempty"`
	Timeout  time.Duration      `yaml:"timeout"`
	Box      [4]float32         `yaml:"box"`
	Small    int8               `yaml:"small"`
	Flag     bool               `yaml:"flag"`
}

func defaults() testCfg {
	return testCfg{
		common: common{Seed: 7, Device: "cpu"},
		Name:   "default",
		Model:  modelCfg{Arch: "r18", NumClasses: 91, Mean: [3]float32{1, 2, 3}},
		Solver: solverCfg{LearningRate: 0.5, MaxIter: 10, Steps: []int{1}},
		Box:    [4]float32{0, 0, 1, 1},
	}
}

func td(name string) string { return filepath.Join("testdata", filepath.FromSlash(name)) }

// get walks a dotted path in a tree.
func get(t *testing.T, tree map[string]any, path string) any {
	t.Helper()
	var cur any = tree
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("path %s: %T is not a mapping", path, cur)
		}
		cur, ok = m[p]
		if !ok {
			t.Fatalf("path %s: key %q missing", path, p)
		}
	}
	return cur
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	return ce
}

func TestLoadTreeInheritance(t *testing.T) {
	tests := []struct {
		file string
		want map[string]any // dotted path -> value
		gone []string       // keys that must be absent
	}{
		{"base.yaml", map[string]any{
			"name": "base", "model.num_classes": 80,
			"model.anchors.sizes": []any{32, 64, 128}, "solver.learning_rate": 0.02,
		}, []string{"_base_"}},
		// Single base through a relative path from a subdirectory; deep map
		// merge keeps model.arch and anchors.ratios; lists replace.
		{"sub/child.yaml", map[string]any{
			"name": "child", "model.arch": "r50", "model.num_classes": 80,
			"model.anchors.sizes":  []any{16, 32},
			"model.anchors.ratios": []any{0.5, 1.0, 2.0},
			"solver.learning_rate": 0.01, "solver.max_iter": 90000,
			"solver.steps": []any{60000, 80000},
		}, []string{"_base_"}},
		// List of bases: extra.yaml (later) wins over base.yaml, the file
		// itself over both.
		{"sub/multi.yaml", map[string]any{
			"name": "extra", "solver.max_iter": 1000, "solver.learning_rate": 0.02,
			"solver.steps": []any{500}, "datasets.train.path": "coco/train2017",
			"model.arch": "r50",
		}, []string{"_base_"}},
		// Base of a base.
		{"nested.yaml", map[string]any{
			"name": "child", "model.num_classes": 20, "model.arch": "r50",
			"model.anchors.sizes": []any{16, 32}, "solver.learning_rate": 0.01,
		}, []string{"_base_"}},
		// Null replaces a mapping.
		{"null_override.yaml", map[string]any{"model.anchors": nil, "model.arch": "r50"}, []string{"_base_"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			tree, err := LoadTree(td(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.want {
				if got := get(t, tree, p); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", p, got, want)
				}
			}
			for _, k := range tc.gone {
				if _, ok := tree[k]; ok {
					t.Errorf("key %q still in the tree", k)
				}
			}
		})
	}
}

func TestLoadTreeDoesNotShareBaseMaps(t *testing.T) {
	// Loading twice must give independent trees.
	a, err := LoadTree(td("sub/child.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	get(t, a, "model.anchors").(map[string]any)["sizes"] = "changed"
	b, err := LoadTree(td("sub/child.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, b, "model.anchors.sizes"); !reflect.DeepEqual(got, []any{16, 32}) {
		t.Fatalf("second load sees %v", got)
	}
}

func TestLoadTreeErrors(t *testing.T) {
	tests := []struct {
		file     string
		wantFile string
		contains []string
	}{
		{"cycle_a.yaml", td("cycle_b.yaml"), []string{"base cycle: " + td("cycle_a.yaml") + " -> " + td("cycle_b.yaml") + " -> " + td("cycle_a.yaml")}},
		{"self_cycle.yaml", td("self_cycle.yaml"), []string{"base cycle: " + td("self_cycle.yaml") + " -> " + td("self_cycle.yaml")}},
		// Line 3 holds "steps: a: b".
		{"bad_syntax.yaml", td("bad_syntax.yaml"), []string{"line 3: mapping values are not allowed in this context"}},
		{"includes_bad.yaml", td("bad_syntax.yaml"), []string{"line 3"}},
		{"missing_base.yaml", td("missing_base.yaml"), []string{`base "does_not_exist.yaml"`, "no such file"}},
		{"includes_missing.yaml", td("missing_base.yaml"), []string{`base "does_not_exist.yaml"`}},
		{"list_top.yaml", td("list_top.yaml"), []string{"top level must be a mapping, got a list of 2 elements"}},
		{"no_such_file.yaml", td("no_such_file.yaml"), []string{"cannot read", "no such file"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadTree(td(tc.file))
			ce := asError(t, err)
			if ce.File != tc.wantFile {
				t.Errorf("File = %q, want %q (error %v)", ce.File, tc.wantFile, err)
			}
			for _, c := range tc.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q does not contain %q", err, c)
				}
			}
		})
	}
}

func TestLoadTreeBadBase(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"_base_: 3\n":         "want a path or a list of paths, got 3",
		"_base_: [a.yaml, 1]": "entry 1: want a non-empty path string, got 1",
		"_base_: ''\n":        "empty base path",
		"a: 1\na: 2\n":        `line 2: mapping key "a" already defined at line 1`,
	}
	i := 0
	for text, want := range cases {
		i++
		p := filepath.Join(dir, "c"+string(rune('0'+i))+".yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadTree(p)
		ce := asError(t, err)
		if ce.File != p || !strings.Contains(ce.Msg, want) {
			t.Errorf("%q: got %v, want file %s and %q", text, err, p, want)
		}
	}
	// An empty file and a null _base_ are an empty tree.
	p := filepath.Join(dir, "empty.yaml")
	os.WriteFile(p, nil, 0o644)
	if tree, err := LoadTree(p); err != nil || len(tree) != 0 {
		t.Errorf("empty file: %v, %v", tree, err)
	}
}

func TestApplySets(t *testing.T) {
	tests := []struct {
		set  string
		path string
		want any
	}{
		{"solver.max_iter=3", "solver.max_iter", 3},
		{"solver.learning_rate=0.02", "solver.learning_rate", 0.02},
		{"flag=true", "flag", true},
		{"solver.steps=[60000,80000]", "solver.steps", []any{60000, 80000}},
		// a mapping merges into the mapping it sets (as _base_ merging does)
		{"model.anchors={a: 1, b: [x]}", "model.anchors", map[string]any{"a": 1, "b": []any{"x"}, "sizes": []any{1}}},
		{`name="text with spaces"`, "name", "text with spaces"},
		{"name=plain", "name", "plain"},
		{`name="3"`, "name", "3"},
		{"name=a=b", "name", "a=b"},
		{"teacher=~", "teacher", nil},
		{"teacher=", "teacher", nil},
		{"new.deep.path=1.5e-3", "new.deep.path", 1.5e-3},
		{" spaced.key =-4", "spaced.key", -4},
	}
	for _, tc := range tests {
		t.Run(tc.set, func(t *testing.T) {
			tree := map[string]any{
				"solver": map[string]any{"max_iter": 1, "learning_rate": 1.0, "steps": []any{1}},
				"model":  map[string]any{"anchors": map[string]any{"sizes": []any{1}}},
				"name":   "x",
			}
			if err := ApplySets(tree, []string{tc.set}); err != nil {
				t.Fatal(err)
			}
			if got := get(t, tree, tc.path); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s = %#v, want %#v", tc.path, got, tc.want)
			}
		})
	}
	// Sets apply in order, into a null on the path, and keep siblings.
	tree := map[string]any{"teacher": nil, "solver": map[string]any{"max_iter": 1}}
	err := ApplySets(tree, []string{"teacher.arch=r101", "solver.steps=[1]", "solver.steps=[2, 3]"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"teacher": map[string]any{"arch": "r101"},
		"solver": map[string]any{"max_iter": 1, "steps": []any{2, 3}}}
	if !reflect.DeepEqual(tree, want) {
		t.Errorf("tree = %#v, want %#v", tree, want)
	}
}

func TestApplySetsErrors(t *testing.T) {
	tests := []struct{ set, contains string }{
		{"solver.max_iter", `malformed entry "solver.max_iter"`},
		{"=3", `malformed entry "=3": empty key`},
		{" =3", `malformed entry " =3": empty key`},
		{"a..b=3", `malformed entry "a..b=3": empty key segment`},
		{"a.=3", `empty key segment`},
		{"name.x=3", `"name" is "x", not a mapping`},
		{"solver.steps=[1, 2", `entry "solver.steps=[1, 2": bad value`},
	}
	for _, tc := range tests {
		tree := map[string]any{"name": "x", "solver": map[string]any{}}
		err := ApplySets(tree, []string{tc.set})
		ce := asError(t, err)
		if ce.File != SetSource || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%q: got %q, want %q", tc.set, err, tc.contains)
		}
	}
}

func TestDecodeUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		tree map[string]any
		path string
		msg  string
	}{
		{"nested with suggestion",
			map[string]any{"solver": map[string]any{"lerning_rate": 0.1}},
			"solver.lerning_rate", `unknown key "solver.lerning_rate" (did you mean "solver.learning_rate"?)`},
		{"top level with suggestion",
			map[string]any{"solvr": map[string]any{}},
			"solvr", `unknown key "solvr" (did you mean "solver"?)`},
		{"inline fields are candidates",
			map[string]any{"devise": "cpu"},
			"devise", `unknown key "devise" (did you mean "device"?)`},
		{"no suggestion when far",
			map[string]any{"model": map[string]any{"completely_different": 1}},
			"model.completely_different", `unknown key "model.completely_different"`},
		{"inside a map value",
			map[string]any{"datasets": map[string]any{"val": map[string]any{"pth": "x"}}},
			"datasets.val.pth", `unknown key "datasets.val.pth" (did you mean "datasets.val.path"?)`},
		{"inside a pointer",
			map[string]any{"solver": map[string]any{"warmup": map[string]any{"iter": 3}}},
			"solver.warmup.iter", `unknown key "solver.warmup.iter" (did you mean "solver.warmup.iters"?)`},
		{"skipped field is unknown",
			map[string]any{"secret": "x"},
			"secret", `unknown key "secret"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaults()
			ce := asError(t, Decode(tc.tree, &cfg))
			if ce.Path != tc.path || ce.Msg != tc.msg {
				t.Errorf("got path %q msg %q, want %q %q", ce.Path, ce.Msg, tc.path, tc.msg)
			}
			if !reflect.DeepEqual(cfg, defaults()) {
				t.Errorf("out changed on error: %+v", cfg)
			}
		})
	}
}

func TestDecodeWrongTypes(t *testing.T) {
	tests := []struct {
		name string
		tree map[string]any
		path string
		msg  string
	}{
		{"string for int", map[string]any{"solver": map[string]any{"max_iter": "abc"}},
			"solver.max_iter", `want an integer, got "abc"`},
		{"fraction for int", map[string]any{"solver": map[string]any{"max_iter": 1.5}},
			"solver.max_iter", `want an integer, got 1.5`},
		{"bool for float", map[string]any{"solver": map[string]any{"learning_rate": true}},
			"solver.learning_rate", `want a number, got true`},
		{"map for list", map[string]any{"solver": map[string]any{"steps": map[string]any{"a": 1}}},
			"solver.steps", `want a list, got a mapping`},
		{"string in list", map[string]any{"solver": map[string]any{"steps": []any{1, "x"}}},
			"solver.steps[1]", `want an integer, got "x"`},
		{"list for struct", map[string]any{"model": []any{1, 2}},
			"model", `want a mapping, got a list of 2 elements`},
		{"scalar for pointer struct", map[string]any{"teacher": "r50"},
			"teacher", `want a mapping, got "r50"`},
		{"int for bool", map[string]any{"flag": 1},
			"flag", `want a boolean, got 1`},
		{"list for string", map[string]any{"name": []any{"a"}},
			"name", `want a string, got a list of 1 elements`},
		{"array too short", map[string]any{"box": []any{1, 2, 3}},
			"box", `want a list of 4 elements, got a list of 3 elements`},
		{"array too long", map[string]any{"model": map[string]any{"mean": []any{1, 2, 3, 4}}},
			"model.mean", `want a list of 3 elements, got a list of 4 elements`},
		{"overflow", map[string]any{"small": 300},
			"small", `value 300 out of range for int8`},
		{"bad duration", map[string]any{"timeout": 5},
			"timeout", `want a duration such as "1.5s", got 5`},
		{"map of structs wrong value", map[string]any{"datasets": map[string]any{"a": 3}},
			"datasets.a", `want a mapping, got 3`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaults()
			ce := asError(t, Decode(tc.tree, &cfg))
			if ce.Path != tc.path || ce.Msg != tc.msg {
				t.Errorf("got path %q msg %q, want %q %q", ce.Path, ce.Msg, tc.path, tc.msg)
			}
			if !reflect.DeepEqual(cfg, defaults()) {
				t.Errorf("out changed on error: %+v", cfg)
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	cfg := defaults()
	tree := map[string]any{
		"seed":   42,
		"name":   2017, // a number into a string field keeps its text
		"model":  map[string]any{"num_classes": 1e1, "anchors": map[string]any{"sizes": []any{8}}},
		"solver": map[string]any{"warmup": map[string]any{"iters": 100}},
		"datasets": map[string]any{
			"train": map[string]any{"path": "p", "year": 2017},
		},
		"extra":   map[string]any{"k": []any{1, "two"}},
		"timeout": "1m30s",
		"box":     []any{1, 2, 3.5, 4},
		"small":   -128,
	}
	if err := Decode(tree, &cfg); err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Seed = 42
	want.Name = "2017"
	want.Model.NumClasses = 10
	want.Model.Anchors.Sizes = []int{8}
	want.Solver.Warmup = &warmup{Iters: 100}
	want.Datasets = map[string]dataset{"train": {Path: "p", Year: "2017"}}
	want.Extra = map[string]any{"k": []any{1, "two"}}
	want.Timeout = 90 * time.Second
	want.Box = [4]float32{1, 2, 3.5, 4}
	want.Small = -128
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
	// Defaults kept: absent fields, inline fields and nested siblings.
	if cfg.Device != "cpu" || cfg.Model.Arch != "r18" || cfg.Solver.LearningRate != 0.5 || cfg.Model.Mean != [3]float32{1, 2, 3} {
		t.Errorf("defaults lost: %+v", cfg)
	}
}

func TestDecodeNullAndMaps(t *testing.T) {
	cfg := defaults()
	cfg.Teacher = &modelCfg{Arch: "r101"}
	cfg.Datasets = map[string]dataset{"train": {Path: "t", Year: "1"}, "val": {Path: "v"}}
	shared := cfg.Datasets
	sharedTeacher := cfg.Teacher
	tree := map[string]any{
		"teacher":  map[string]any{"num_classes": 5},
		"datasets": map[string]any{"val": map[string]any{"year": "2"}, "test": map[string]any{"path": "x"}},
		"solver":   map[string]any{"steps": nil, "max_iter": nil},
	}
	if err := Decode(tree, &cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*cfg.Teacher, modelCfg{Arch: "r101", NumClasses: 5}) {
		t.Errorf("teacher = %+v", *cfg.Teacher)
	}
	wantDS := map[string]dataset{"train": {Path: "t", Year: "1"}, "val": {Path: "v", Year: "2"}, "test": {Path: "x"}}
	if !reflect.DeepEqual(cfg.Datasets, wantDS) {
		t.Errorf("datasets = %+v", cfg.Datasets)
	}
	if cfg.Solver.Steps != nil || cfg.Solver.MaxIter != 0 {
		t.Errorf("null did not reset: %+v", cfg.Solver)
	}
	// The caller's map and pointee are not written to.
	if len(shared) != 2 || shared["val"].Year != "" || sharedTeacher.NumClasses != 0 {
		t.Errorf("defaults mutated: %+v %+v", shared, sharedTeacher)
	}
	// A null teacher clears the pointer.
	if err := Decode(map[string]any{"teacher": nil}, &cfg); err != nil || cfg.Teacher != nil {
		t.Errorf("teacher=null: %v %+v", err, cfg.Teacher)
	}
}

// Inner is exported so that a pointer to it can be embedded and set.
type Inner struct {
	Seed int `yaml:"seed"`
}

type inlinePtrCfg struct {
	*Inner `yaml:",inline"`
	Rest   map[string]int `yaml:",inline"`
	Name   string         `yaml:"name"`
}

type intKeys struct {
	ByID map[int]string `yaml:"by_id"`
}

func TestDecodeInlineVariants(t *testing.T) {
	var c inlinePtrCfg
	if err := Decode(map[string]any{"seed": 3, "name": "n", "other": 4, "more": 5}, &c); err != nil {
		t.Fatal(err)
	}
	if c.Inner == nil || c.Seed != 3 || c.Name != "n" || !reflect.DeepEqual(c.Rest, map[string]int{"other": 4, "more": 5}) {
		t.Errorf("got %+v %+v", c, c.Inner)
	}
	ce := asError(t, Decode(map[string]any{"other": "x"}, &c))
	if ce.Path != "other" || ce.Msg != `want an integer, got "x"` {
		t.Errorf("inline map type error: %v", ce)
	}

	var k intKeys
	if err := Decode(map[string]any{"by_id": map[string]any{"1": "a", "20": "b"}}, &k); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(k.ByID, map[int]string{1: "a", 20: "b"}) {
		t.Errorf("int keys: %v", k.ByID)
	}
	ce = asError(t, Decode(map[string]any{"by_id": map[string]any{"x": "a"}}, &k))
	if ce.Path != "by_id.x" {
		t.Errorf("bad int key: %v", ce)
	}
}

type badInline struct {
	A int `yaml:",inline"`
}

type unexportedInlinePtr struct {
	*common `yaml:",inline"`
}

type dupKeys struct {
	A int `yaml:"x"`
	B int `yaml:"x"`
}

func TestDecodeBadTargets(t *testing.T) {
	var cfg testCfg
	for _, out := range []any{nil, cfg, (*testCfg)(nil)} {
		if err := Decode(map[string]any{}, out); err == nil {
			t.Errorf("Decode into %T: no error", out)
		} else {
			asError(t, err)
		}
	}
	var b badInline
	if err := Decode(map[string]any{"a": 1}, &b); err == nil || !strings.Contains(err.Error(), "inline") {
		t.Errorf("bad inline: %v", err)
	}
	var u unexportedInlinePtr
	if err := Decode(map[string]any{"seed": 1}, &u); err == nil || !strings.Contains(err.Error(), "inline pointer must be exported") {
		t.Errorf("unexported inline pointer: %v", err)
	}
	var d dupKeys
	if err := Decode(map[string]any{"x": 1}, &d); err == nil || !strings.Contains(err.Error(), `"x" used by two fields`) {
		t.Errorf("dup keys: %v", err)
	}
	var ch struct{ C chan int }
	if err := Decode(map[string]any{"c": 1}, &ch); err == nil {
		t.Error("chan field: no error")
	}
}

func TestLoadEndToEnd(t *testing.T) {
	cfg := defaults()
	resolved, err := Load(td("sub/multi.yaml"), []string{"solver.steps=[60000,80000]", "model.num_classes=3", "device=cuda"}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Name = "extra"
	want.Seed = 1
	want.Device = "cuda"
	want.Model = modelCfg{Arch: "r50", NumClasses: 3, Mean: [3]float32{0.485, 0.456, 0.406},
		Anchors: anchors{Sizes: []int{32, 64, 128}, Ratios: []float64{0.5, 1, 2}}}
	want.Solver = solverCfg{LearningRate: 0.02, MaxIter: 1000, Steps: []int{60000, 80000}}
	want.Datasets = map[string]dataset{"train": {Path: "coco/train2017", Year: "2017"}}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}

	// The resolved YAML shows the defaults and loads back to the same value.
	var back map[string]any
	if err := yaml.Unmarshal(resolved, &back); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resolved), "\nsolver:\n  learning_rate: 0.02\n  max_iter: 1000\n  steps:\n    - 60000\n    - 80000\n") {
		t.Errorf("resolved YAML layout:\n%s", resolved)
	}
	if back["device"] != "cuda" || back["timeout"] != "0s" || back["flag"] != false {
		t.Errorf("resolved YAML misses defaults:\n%s", resolved)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "resolved.yaml")
	if err := Save(p, resolved); err != nil {
		t.Fatal(err)
	}
	var again testCfg
	resolved2, err := Load(p, nil, &again)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("round trip: got %+v\nwant %+v", again, want)
	}
	if string(resolved2) != string(resolved) || Hash(resolved2) != Hash(resolved) {
		t.Errorf("resolved YAML not stable:\n%s\n---\n%s", resolved, resolved2)
	}
}

func TestLoadErrorsNameTheirSource(t *testing.T) {
	tests := []struct {
		file  string
		sets  []string
		eFile string
		ePath string
		msg   string
	}{
		{"typo.yaml", nil, td("typo.yaml"), "solver.lerning_rate",
			`unknown key "solver.lerning_rate" (did you mean "solver.learning_rate"?)`},
		// The bad value comes from the base, through the child.
		{"nested.yaml", []string{"model.anchors.sizes=[a]"}, SetSource, "model.anchors.sizes[0]", `want an integer, got "a"`},
		{"sub/child.yaml", []string{"solver.max_iter=abc"}, SetSource, "solver.max_iter", `want an integer, got "abc"`},
		{"sub/child.yaml", []string{"solver.nope=1"}, SetSource, "solver.nope", `unknown key "solver.nope"`},
		{"sub/child.yaml", []string{"bad"}, SetSource, "", `malformed entry "bad": want key.path=value`},
		{"bad_syntax.yaml", nil, td("bad_syntax.yaml"), "", "line 3: mapping values are not allowed in this context"},
	}
	for _, tc := range tests {
		t.Run(tc.file+strings.Join(tc.sets, ","), func(t *testing.T) {
			cfg := defaults()
			res, err := Load(td(tc.file), tc.sets, &cfg)
			ce := asError(t, err)
			if res != nil || ce.File != tc.eFile || ce.Path != tc.ePath || ce.Msg != tc.msg {
				t.Errorf("got %+v, want {%s %s %s}", *ce, tc.eFile, tc.ePath, tc.msg)
			}
		})
	}
	// A wrong value in a base file names the base, not the child.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("solver:\n  max_iter: lots\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("_base_: b.yaml\nsolver:\n  learning_rate: 1\n"), 0o644)
	cfg := defaults()
	_, err := Load(filepath.Join(dir, "c.yaml"), nil, &cfg)
	ce := asError(t, err)
	if ce.File != filepath.Join(dir, "b.yaml") || ce.Error() != filepath.Join(dir, "b.yaml")+`: solver.max_iter: want an integer, got "lots"` {
		t.Errorf("got %v", ce)
	}
}

func TestHash(t *testing.T) {
	// sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
	if got := Hash([]byte("abc")); got != "ba7816bf8f01cfea" {
		t.Errorf("Hash(abc) = %s", got)
	}
	if Hash([]byte("a: 1\n")) == Hash([]byte("a: 2\n")) {
		t.Error("different inputs, same hash")
	}
	// Same configuration loaded twice hashes the same.
	var h []string
	for i := 0; i < 2; i++ {
		cfg := defaults()
		r, err := Load(td("nested.yaml"), []string{"solver.steps=[1,2]"}, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		h = append(h, Hash(r))
	}
	if h[0] != h[1] || len(h[0]) != 16 {
		t.Errorf("hashes %v", h)
	}
}

func TestSave(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yaml")
	for _, content := range []string{"a: 1\n", "b: 2\n"} {
		if err := Save(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v", got, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	err := Save(filepath.Join(dir, "missing", "x.yaml"), []byte("a"))
	if ce := asError(t, err); ce.File != filepath.Join(dir, "missing", "x.yaml") {
		t.Errorf("got %v", err)
	}
}

func TestLevenshteinAndSuggest(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"lerning_rate", "learning_rate", 1}, {"αβ", "αγ", 1}} {
		if got := levenshtein(tc.a, tc.b); got != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
	names := []string{"learning_rate", "max_iter", "steps", "warmup"}
	for key, want := range map[string]string{
		"lerning_rate": "learning_rate", "maxiter": "max_iter", "step": "steps",
		"xyz": "", "lr": "", "warmup_iters": "", "max_iters": "max_iter",
	} {
		if got := suggest(key, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}

// level implements encoding.TextUnmarshaler; mode implements yaml.Unmarshaler.
type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return errors.New("unknown level " + string(b))
	}
	return nil
}

type mode struct{ Name string }

func (m *mode) UnmarshalYAML(n *yaml.Node) error {
	return n.Decode(&m.Name)
}

type moreKinds struct {
	U     uint16            `yaml:"u"`
	F32   float32           `yaml:"f32"`
	When  time.Time         `yaml:"when"`
	Day   string            `yaml:"day"`
	Level level             `yaml:"level"`
	Mode  mode              `yaml:"mode"`
	Keys  map[string]string `yaml:"keys"`
}

func TestDecodeMoreKinds(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.yaml")
	text := "u: 65535\nf32: 1.5\nwhen: 2020-05-06T07:08:09Z\nday: 2017-01-02\nlevel: high\nmode: fast\nkeys: {1: one, true: yes}\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var k moreKinds
	if _, err := Load(p, nil, &k); err != nil {
		t.Fatal(err)
	}
	want := moreKinds{U: 65535, F32: 1.5, When: time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC),
		Day: "2017-01-02", Level: 2, Mode: mode{"fast"}, Keys: map[string]string{"1": "one", "true": "yes"}}
	if !reflect.DeepEqual(k, want) {
		t.Errorf("got %+v\nwant %+v", k, want)
	}
	for _, tc := range []struct {
		tree map[string]any
		path string
		msg  string
	}{
		{map[string]any{"u": -1}, "u", "want a non-negative integer, got -1"},
		{map[string]any{"u": 65536}, "u", "value 65536 out of range for uint16"},
		{map[string]any{"f32": 1e39}, "f32", "value 1e+39 out of range for float32"},
		{map[string]any{"when": "yesterday"}, "when", `want an RFC 3339 timestamp, got "yesterday"`},
		{map[string]any{"level": "medium"}, "level", `cannot decode "medium" into yamlconf.level`},
		{map[string]any{"keys": map[string]any{"a": map[string]any{}}}, "keys.a", "want a string, got a mapping"},
	} {
		var k moreKinds
		ce := asError(t, Decode(tc.tree, &k))
		if ce.Path != tc.path || !strings.HasPrefix(ce.Msg, tc.msg) {
			t.Errorf("%v: got %q %q, want %q %q", tc.tree, ce.Path, ce.Msg, tc.path, tc.msg)
		}
	}
	// Mapping keys that are lists (refused by yaml.v3) or null are errors.
	for text, want := range map[string]string{
		"a:\n  ? [1, 2]\n  : x\n": "invalid map key",
		"a:\n  b: 1\n  ~: x\n":    "a: unsupported mapping key null",
	} {
		os.WriteFile(p, []byte(text), 0o644)
		_, err := LoadTree(p)
		if ce := asError(t, err); ce.File != p || !strings.Contains(ce.Msg, want) {
			t.Errorf("%q: got %v, want %q", text, err, want)
		}
	}
}
