package weights

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type goldenTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

// readGolden reads a JSON dump written by scripts/weights_golden.py: key ->
// shape and the values as float32 converted by torch, printed exactly.
func readGolden(t *testing.T, name string) map[string]goldenTensor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var g map[string]goldenTensor
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// checkAgainstGolden asserts that sd holds exactly the golden keys with
// bit-identical values.
func checkAgainstGolden(t *testing.T, sd StateDict, golden map[string]goldenTensor) {
	t.Helper()
	if len(sd) != len(golden) {
		t.Errorf("got %d tensors %v, want %d", len(sd), sd.Keys(), len(golden))
	}
	for k, g := range golden {
		got, ok := sd[k]
		if !ok {
			t.Errorf("missing key %q", k)
			continue
		}
		if !sameShape(got.Shape, g.Shape) {
			t.Errorf("%s: shape %v, want %v", k, got.Shape, g.Shape)
			continue
		}
		if len(got.Data) != len(g.Data) {
			t.Errorf("%s: %d values, want %d", k, len(got.Data), len(g.Data))
			continue
		}
		for i, want := range g.Data {
			if got.Data[i] != float32(want) {
				t.Errorf("%s[%d] = %v, want %v", k, i, got.Data[i], float32(want))
				break
			}
		}
	}
}

func TestLoadPthGolden(t *testing.T) {
	golden := readGolden(t, "tiny_resnet.json")
	for _, tc := range []struct{ file, format string }{
		{"tiny_resnet.pth", "zip"},
		{"tiny_resnet_legacy.pth", "legacy"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			sd, info, err := LoadPthInfo(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstGolden(t, sd, golden)
			if info.Format != tc.format {
				t.Errorf("format %q, want %q", info.Format, tc.format)
			}
			if info.Wrapper != "" {
				t.Errorf("wrapper %q, want none", info.Wrapper)
			}
			wantSkipped := []string{"bn1.num_batches_tracked", "layer1.0.bn1.num_batches_tracked"}
			if strings.Join(info.Skipped, ",") != strings.Join(wantSkipped, ",") {
				t.Errorf("skipped %v, want %v", info.Skipped, wantSkipped)
			}
			wantOrder := []string{"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
				"layer1.0.conv1.weight", "fc.weight", "fc.bias", "extra.expanded", "extra.double", "extra.half",
				"extra.scalar", "extra.empty"}
			if strings.Join(info.Order, ",") != strings.Join(wantOrder, ",") {
				t.Errorf("order %v, want %v", info.Order, wantOrder)
			}
			if info.Converted["extra.double"] != "float64" || info.Converted["extra.half"] != "float16" || len(info.Converted) != 2 {
				t.Errorf("converted %v, want extra.double float64 and extra.half float16", info.Converted)
			}
			// Layout sanity independent of the dump: fc.weight is the
			// transpose of a (3,5) matrix and fc.bias a stride-2 slice.
			if s := sd["fc.weight"].Shape; !sameShape(s, []int{5, 3}) {
				t.Errorf("fc.weight shape %v", s)
			}
			if s := sd["extra.scalar"]; len(s.Shape) != 0 || len(s.Data) != 1 || s.Data[0] != 2.5 {
				t.Errorf("extra.scalar = %+v, want shape [] value 2.5", s)
			}
			ex := sd["extra.expanded"]
			for r := 0; r < 3; r++ {
				for c := 1; c < 4; c++ {
					if ex.Data[r*4+c] != ex.Data[r*4] {
						t.Errorf("extra.expanded row %d not constant: %v", r, ex.Data[r*4:r*4+4])
					}
				}
			}
			// Mutating one tensor must not change another (no shared storage).
			sd["bn1.weight"].Data[0] = 1234
			if sd["bn1.bias"].Data[0] == 1234 {
				t.Error("bn1.weight and bn1.bias share storage")
			}
		})
	}
}

func TestLoadPthWrappers(t *testing.T) {
	golden := readGolden(t, "wrapped.json")
	for file, wrapper := range map[string]string{
		"wrapped_model.pth":      "model",
		"wrapped_state_dict.pth": "state_dict",
	} {
		sd, info, err := LoadPthInfo(filepath.Join("testdata", file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		checkAgainstGolden(t, sd, golden)
		if info.Wrapper != wrapper {
			t.Errorf("%s: wrapper %q, want %q", file, info.Wrapper, wrapper)
		}
	}
}

func TestLoadPthErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join("testdata", "tiny_resnet.pth"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.pth")
	if err := os.WriteFile(truncated, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	legacy, err := os.ReadFile(filepath.Join("testdata", "tiny_resnet_legacy.pth"))
	if err != nil {
		t.Fatal(err)
	}
	truncatedLegacy := filepath.Join(dir, "truncated_legacy.pth")
	if err := os.WriteFile(truncatedLegacy, legacy[:len(legacy)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pth")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	td := func(name string) string { return filepath.Join("testdata", name) }
	for _, tc := range []struct {
		path string
		want string // substring of the error
	}{
		{filepath.Join(dir, "does_not_exist.pth"), "no such file"},
		{dir, "not a regular file"},
		{empty, "empty file"},
		{truncated, "truncated or corrupt zip archive"},
		{truncatedLegacy, "file ends inside storage"},
		{td("random.bin"), "not a PyTorch file"},
		{td("no_pickle.pth"), "zip archive without data.pkl"},
		{td("plain_pickle.pkl"), "a pickle but not a torch.save file"},
		{td("list.pth"), "top-level object is a list, not a state dict"},
		{td("no_tensors.pth"), "not a state dict"},
		{td("int32.pth"), `tensor "a.index" has unsupported dtype int32`},
	} {
		sd, err := LoadPth(tc.path)
		if err == nil {
			t.Errorf("%s: loaded %d tensors, want an error", tc.path, len(sd))
			continue
		}
		t.Logf("%v", err)
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.path, err, tc.want)
		}
		if !strings.Contains(err.Error(), tc.path) {
			t.Errorf("error %q does not name the file %s", err, tc.path)
		}
	}
}

// TestLoadPthCorruptBytes flips bytes all over a valid file: the loader must
// return (an error or a result), never panic.
func TestLoadPthCorruptBytes(t *testing.T) {
	for _, name := range []string{"tiny_resnet.pth", "tiny_resnet_legacy.pth"} {
		good, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		step := 7
		if testing.Short() {
			step = 29
		}
		for i := 0; i < len(good); i += step {
			b := append([]byte{}, good...)
			b[i] ^= 0xA5
			p := filepath.Join(dir, "c.pth")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s with byte %d flipped: panic %v", name, i, r)
					}
				}()
				_, _ = LoadPth(p)
			}()
		}
	}
}
