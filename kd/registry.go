package kd

import (
	"fmt"
	"strings"
)

// LossSpec describes one feature-distillation loss: the one list that
// Config.Validate, the Distiller, the configuration schema (distill.loss)
// and docs/KD.md's table (checked by TestRegistryMatchesDocs) read.
type LossSpec struct {
	Name string
	// DefaultWeight is lambda when Config.Weight is 0.
	DefaultWeight float64
	// Reference names the implementation it is checked against.
	Reference string
	// Generator: the student's maps pass through a masked generator
	// (MGD), whose parameters the Distiller registers.
	Generator bool
	// New returns the per-level kernel for a configuration with defaults.
	New func(c Config) (LevelLoss, error)
}

// registry lists the losses in the order documentation and messages use;
// the first is the default.
var registry = []LossSpec{
	{Name: "ssim", DefaultWeight: 2, Reference: "kornia ssim_loss", New: func(c Config) (LevelLoss, error) { return NewSSIM(c.ssim()) }},
	{Name: "l1", DefaultWeight: 1, Reference: "F.l1_loss", New: func(Config) (LevelLoss, error) { return &L1{}, nil }},
	{Name: "l2", DefaultWeight: 1, Reference: "F.mse_loss", New: func(Config) (LevelLoss, error) { return &L2{}, nil }},
	{Name: "pkd", DefaultWeight: 6, Reference: "mmrazor PKDLoss", New: func(Config) (LevelLoss, error) { return &PKD{}, nil }},
	{Name: "cwd", DefaultWeight: 10, Reference: "mmrazor ChannelWiseDivergence", New: func(c Config) (LevelLoss, error) { return &CWD{Tau: c.Tau}, nil }},
	{Name: "mgd", DefaultWeight: 2e-5, Reference: "mmrazor MGDLoss", Generator: true, New: func(Config) (LevelLoss, error) { return &SumMSE{}, nil }},
}

// Losses returns every registered loss, the default first.
func Losses() []LossSpec { return append([]LossSpec(nil), registry...) }

// LossNames returns the registered losses' names, the default first.
func LossNames() []string {
	names := make([]string, len(registry))
	for i, s := range registry {
		names[i] = s.Name
	}
	return names
}

// LookupLoss returns the registered loss called name.
func LookupLoss(name string) (LossSpec, bool) {
	for _, s := range registry {
		if s.Name == name {
			return s, true
		}
	}
	return LossSpec{}, false
}

// CheckLossName reports an unregistered loss name; "" (no distillation)
// is accepted. field names the setting in the message.
func CheckLossName(field, name string) error {
	if _, ok := LookupLoss(name); ok || name == "" {
		return nil
	}
	n := LossNames()
	return fmt.Errorf("%s %q: want %s or %s", field, name, strings.Join(n[:len(n)-1], ", "), n[len(n)-1])
}
