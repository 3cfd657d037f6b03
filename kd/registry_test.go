package kd

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestRegistryMatchesDocs: docs/KD.md's table of losses lists exactly the
// registered losses, in order, with their default weights.
func TestRegistryMatchesDocs(t *testing.T) {
	raw, err := os.ReadFile("../docs/KD.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(raw), "## Formulas and defaults")
	if !ok {
		t.Fatal("docs/KD.md has no \"Formulas and defaults\" section")
	}
	var names []string
	var weights []float64
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `") {
			if len(names) > 0 {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		w, err := strconv.ParseFloat(strings.Fields(cells[len(cells)-1])[0], 64)
		if err != nil {
			t.Fatalf("default lambda of %q: %v", line, err)
		}
		names = append(names, strings.Trim(strings.TrimSpace(cells[0]), "`"))
		weights = append(weights, w)
	}
	reg := Losses()
	if len(names) != len(reg) {
		t.Fatalf("docs list %v, the registry %v", names, LossNames())
	}
	for i, s := range reg {
		if names[i] != s.Name || weights[i] != s.DefaultWeight {
			t.Errorf("docs row %d: %s (lambda %v), registry %s (lambda %v)", i, names[i], weights[i], s.Name, s.DefaultWeight)
		}
		if DefaultWeight(s.Name) != s.DefaultWeight {
			t.Errorf("DefaultWeight(%s) = %v", s.Name, DefaultWeight(s.Name))
		}
	}
	if err := CheckLossName("distill.loss", "kl"); err == nil || !strings.Contains(err.Error(), "ssim, l1, l2, pkd, cwd or mgd") {
		t.Errorf("unknown loss: %v", err)
	}
}
