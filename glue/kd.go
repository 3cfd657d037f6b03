package glue

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/kd"
)

// kdOptions are the distill.options keys and the kd.Config field each sets.
var kdOptions = map[string]func(c *kd.Config, v float64){
	"window":     func(c *kd.Config, v float64) { c.Window = int(v) },
	"sigma":      func(c *kd.Config, v float64) { c.Sigma = v },
	"tau":        func(c *kd.Config, v float64) { c.Tau = v },
	"mask_ratio": func(c *kd.Config, v float64) { c.MaskRatio = v },
}

// KD maps the distill section onto the distiller's configuration; an
// unknown distill.options key is an error.
func KD(cfg *config.File) (kd.Config, error) {
	dc := cfg.Distill
	kc := kd.Config{Loss: dc.Loss, Weight: dc.Weight, Levels: dc.Levels, Adapter: dc.Adapter, Normalize: dc.Normalize, Terms: dc.Terms, Padding: dc.Padding}
	for _, k := range slices.Sorted(maps.Keys(dc.Options)) {
		set, ok := kdOptions[k]
		if !ok {
			return kd.Config{}, fmt.Errorf("distill.options.%s is not a known option (%s)", k, strings.Join(slices.Sorted(maps.Keys(kdOptions)), ", "))
		}
		set(&kc, dc.Options[k])
	}
	return kc, nil
}
