// Package golden reads the reference arrays written by the Python
// generators in scripts/ (scripts/golden_common.py's Writer): NAME.json
// lists each array's shape, subsampling step and offset into NAME.bin
// (float32 little-endian).
package golden

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// Array is one stored reference array: Data holds every Step-th element of
// the flattened array of the given Shape.
type Array struct {
	Shape  []int   `json:"shape"`
	Offset int     `json:"offset"`
	Count  int     `json:"count"`
	Step   int     `json:"step"`
	AbsMax float64 `json:"absmax"`
	Data   []float32
}

// File is a loaded golden file.
type File struct {
	Meta   map[string]any    `json:"meta"`
	Arrays map[string]*Array `json:"arrays"`
}

// Load reads path.json and path.bin.
func Load(path string) (*File, error) {
	hdr, err := os.ReadFile(path + ".json")
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(hdr, &f); err != nil {
		return nil, fmt.Errorf("%s.json: %w", path, err)
	}
	raw, err := os.ReadFile(path + ".bin")
	if err != nil {
		return nil, err
	}
	for name, a := range f.Arrays {
		end := (a.Offset + a.Count) * 4
		if a.Offset < 0 || end > len(raw) {
			return nil, fmt.Errorf("%s: array %q out of range", path, name)
		}
		a.Data = make([]float32, a.Count)
		for i := range a.Data {
			a.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[(a.Offset+i)*4:]))
		}
	}
	return &f, nil
}

// Compare returns the max abs difference between got (the full array) and
// the stored subsample, and the reference's max abs value.
func (a *Array) Compare(got []float32) (maxErr float64, scale float64, err error) {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	if len(got) != n {
		return 0, 0, fmt.Errorf("size %d, reference has %d (shape %v)", len(got), n, a.Shape)
	}
	for i, want := range a.Data {
		d := math.Abs(float64(got[i*a.Step]) - float64(want))
		if d > maxErr || math.IsNaN(d) {
			maxErr = d
		}
	}
	return maxErr, a.AbsMax, nil
}
