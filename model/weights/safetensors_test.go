package weights

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleStateDict() StateDict {
	sd := StateDict{
		"backbone.body.conv1.weight": {Shape: []int{2, 3, 1, 2}, Data: make([]float32, 12)},
		"fc.bias":                    {Shape: []int{3}, Data: []float32{float32(math.Inf(1)), -0, 1e-45}},
		"scalar":                     {Shape: []int{}, Data: []float32{-7.25}},
		"empty":                      {Shape: []int{0, 4}, Data: []float32{}},
	}
	for i := range sd["backbone.body.conv1.weight"].Data {
		sd["backbone.body.conv1.weight"].Data[i] = float32(i)*0.37 - 1.5
	}
	return sd
}

func TestSafetensorsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "w.safetensors")
	sd := sampleStateDict()
	meta := map[string]string{"format": "pt", "step": "1200"}
	if err := SaveSafetensors(p, sd, meta); err != nil {
		t.Fatal(err)
	}
	got, gotMeta, err := LoadSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotMeta) != 2 || gotMeta["format"] != "pt" || gotMeta["step"] != "1200" {
		t.Errorf("metadata %v, want %v", gotMeta, meta)
	}
	if len(got) != len(sd) {
		t.Fatalf("got keys %v, want %v", got.Keys(), sd.Keys())
	}
	for k, want := range sd {
		g := got[k]
		if g == nil || !sameShape(g.Shape, want.Shape) || len(g.Data) != len(want.Data) {
			t.Fatalf("%s: got %+v, want %+v", k, g, want)
		}
		for i := range want.Data {
			if math.Float32bits(g.Data[i]) != math.Float32bits(want.Data[i]) {
				t.Errorf("%s[%d] = %v, want %v (bitwise)", k, i, g.Data[i], want.Data[i])
			}
		}
	}
	// The file layout, checked by hand: 8-byte little-endian header length,
	// then a JSON header with F32 dtypes and offsets.
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	if !strings.Contains(string(hdr["fc.bias"]), `"F32"`) {
		t.Errorf("fc.bias header entry %s lacks dtype F32", hdr["fc.bias"])
	}
	if uint64(len(raw)) != 8+n+4*(12+3+1) {
		t.Errorf("file is %d bytes, want header + %d data bytes", len(raw), 4*16)
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after save, want 1", len(entries))
	}
}

func TestSafetensorsSaveFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "w.safetensors")
	if err := SaveSafetensors(p, sampleStateDict(), nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p)
	bad := StateDict{"x": {Shape: []int{2, 2}, Data: []float32{1, 2, 3}}}
	err := SaveSafetensors(p, bad, nil)
	if err == nil || !strings.Contains(err.Error(), `"x"`) || !strings.Contains(err.Error(), p) {
		t.Fatalf("saving a tensor whose data disagrees with its shape: err %v", err)
	}
	after, _ := os.ReadFile(p)
	if string(before) != string(after) {
		t.Error("a failed save changed the existing file")
	}
	// A directory that does not exist: error, no panic.
	if err := SaveSafetensors(filepath.Join(dir, "no", "such", "dir.safetensors"), sampleStateDict(), nil); err == nil {
		t.Error("saving into a missing directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (temp files left?)", len(entries))
	}
}

// writeRawSafetensors writes a file with a hand-made header and data.
func writeRawSafetensors(t *testing.T, path, header string, data []byte) {
	t.Helper()
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	b = append(b, data...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSafetensorsBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := SaveSafetensors(good, sampleStateDict(), map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(good)

	truncated := filepath.Join(dir, "truncated.safetensors")
	os.WriteFile(truncated, raw[:len(raw)-10], 0o644)
	truncatedHeader := filepath.Join(dir, "truncated_header.safetensors")
	os.WriteFile(truncatedHeader, raw[:20], 0o644)
	tiny := filepath.Join(dir, "tiny.safetensors")
	os.WriteFile(tiny, raw[:5], 0o644)

	data := make([]byte, 24) // room for 6 float32
	lyingEnd := filepath.Join(dir, "lying_end.safetensors")
	writeRawSafetensors(t, lyingEnd, `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,40]}}`, data)
	overlap := filepath.Join(dir, "overlap.safetensors")
	writeRawSafetensors(t, overlap, `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}`, data)
	shapeLie := filepath.Join(dir, "shape_lie.safetensors")
	writeRawSafetensors(t, shapeLie, `{"a":{"dtype":"F32","shape":[5],"data_offsets":[0,24]}}`, data)
	intDType := filepath.Join(dir, "int.safetensors")
	writeRawSafetensors(t, intDType, `{"a":{"dtype":"I64","shape":[3],"data_offsets":[0,24]}}`, data)
	notJSON := filepath.Join(dir, "notjson.safetensors")
	writeRawSafetensors(t, notJSON, `{"a":[1,2`, data)

	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.safetensors"), "no such file"},
		{dir, "not a regular file"},
		{truncated, "(truncated?)"},
		{truncatedHeader, "header length"},
		{tiny, "invalid safetensors file"},
		{lyingEnd, "invalid safetensors file"},
		{overlap, "invalid metadata offset"},
		{shapeLie, "offsets mismatch"},
		{intDType, "unsupported dtype I64"},
		{notJSON, "invalid header"},
		{filepath.Join("testdata", "tiny_resnet.pth"), "not a safetensors file"},
	} {
		sd, _, err := LoadSafetensors(tc.path)
		if err == nil {
			t.Errorf("%s: loaded %d tensors, want an error", tc.path, len(sd))
			continue
		}
		t.Logf("%v", err)
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: error %q, want it to contain %q and the file name", tc.path, err, tc.want)
		}
	}
}

// TestSafetensorsFromPython loads a file whose header and data were written
// by scripts/weights_golden.py (torch tensors, hand-written header).
func TestSafetensorsFromPython(t *testing.T) {
	sd, meta, err := LoadSafetensors(filepath.Join("testdata", "from_python.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstGolden(t, sd, readGolden(t, "from_python.json"))
	if meta["format"] != "pt" || meta["source"] != "weights_golden.py" {
		t.Errorf("metadata %v", meta)
	}
}

// TestPthToSafetensors converts the golden .pth and reads it back.
func TestPthToSafetensors(t *testing.T) {
	sd, err := LoadPth(filepath.Join("testdata", "tiny_resnet.pth"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := SaveSafetensors(p, sd, map[string]string{"from": "tiny_resnet.pth"}); err != nil {
		t.Fatal(err)
	}
	back, _, err := LoadSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstGolden(t, back, readGolden(t, "tiny_resnet.json"))
}
