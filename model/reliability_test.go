package model

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// TestNaNWeightsRefused: weights holding NaN or Inf are an error naming
// the tensor, not a model that silently detects nothing (issue 12).
func TestNaNWeightsRefused(t *testing.T) {
	reg := tinyBackbone(t)
	name := reg.Params()[3].Name
	reg.Params()[3].Data()[1] = float32(math.NaN())
	p := filepath.Join(t.TempDir(), "nan.safetensors")
	if err := SaveWeights(reg, p, nil); err != nil {
		t.Fatal(err)
	}
	_, err := LoadWeights(tinyBackbone(t), p, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "NaN or Inf") || !strings.Contains(err.Error(), name+" (1 of") || !strings.Contains(err.Error(), p) {
		t.Errorf("NaN weights: %v", err)
	}
}

// TestWeightsDirectory: a directory passed as a weights file is named as
// such, not as an "empty file" (issue 12).
func TestWeightsDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadWeights(tinyBackbone(t), dir, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "is a directory") || strings.Contains(err.Error(), "empty file") {
		t.Errorf("directory: %v", err)
	}
}
