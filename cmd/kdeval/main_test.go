package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testdata = "../../cocoeval/testdata"

// TestGoldenCase runs the command on a pycocotools golden case and checks
// the printed summary and the JSON file against pycocotools' numbers.
func TestGoldenCase(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testdata, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Cases map[string]struct {
			GT    string    `json:"gt"`
			Dets  string    `json:"dets"`
			Stats []float64 `json:"stats"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	c, ok := exp.Cases["crowd"]
	if !ok {
		t.Fatal("no crowd case")
	}
	out := filepath.Join(t.TempDir(), "m.json")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--ann", filepath.Join(testdata, c.GT), "--results", filepath.Join(testdata, c.Dets), "--json", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	lines := strings.Split(stdout.String(), "\n")
	if len(lines) < 14 {
		t.Fatalf("output:\n%s", stdout.String())
	}
	// pycocotools prints {:0.3f} of each stat
	for i, want := range c.Stats {
		if !strings.HasSuffix(lines[i], fmt.Sprintf("] = %0.3f", want)) {
			t.Errorf("line %d %q, want value %0.3f", i, lines[i], want)
		}
	}
	if lines[0] != " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.229" {
		t.Errorf("first line %q", lines[0])
	}
	if !strings.Contains(stdout.String(), "class_1") {
		t.Errorf("no per-class table:\n%s", stdout.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	names := []string{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}
	for i, n := range names {
		v, ok := m[n].(float64)
		if !ok || math.Abs(v-c.Stats[i]) > 1e-9 {
			t.Errorf("%s = %v, want %v", n, m[n], c.Stats[i])
		}
	}
	pc, ok := m["per_class"].(map[string]any)
	if !ok || len(pc) != 4 {
		t.Fatalf("per_class %v", m["per_class"])
	}
	sum := 0.0
	for _, v := range pc {
		sum += v.(float64)
	}
	if math.Abs(sum/4-c.Stats[0]) > 1e-12 {
		t.Errorf("mean per-class AP %v, AP %v", sum/4, c.Stats[0])
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{\"images\": [\n  {\"id\": 1,,}]}"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.json")
	if err := os.WriteFile(other, []byte(`[{"image_id": 987654, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	gt := filepath.Join(testdata, "basic_gt.json")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"--nope"}, 2, "unknown flag"},
		{"missing flags", []string{"--ann", gt}, 2, "--ann and --results are required"},
		{"positional", []string{"x"}, 2, "unknown command"},
		{"missing file", []string{"--ann", filepath.Join(dir, "none.json"), "--results", gt}, 2, "none.json"},
		{"bad gt", []string{"--ann", bad, "--results", gt}, 2, bad + ":2:12: invalid JSON"},
		{"results of other images", []string{"--ann", gt, "--results", other}, 2, "image ids not in it: 987654"},
		{"unwritable json", []string{"--ann", gt, "--results", filepath.Join(testdata, "basic_dets.json"), "--json", filepath.Join(dir, "no", "such", "dir.json")}, 1, "no such file"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: exit %d stderr %q, want %d and %q", c.name, code, stderr.String(), c.code, c.want)
		}
	}
}
