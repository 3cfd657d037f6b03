package main

import (
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/train"
)

// hooks returns the hooks the configuration adds to train.DefaultHooks:
// distillation when distill.loss is set. This is the one place that
// registers hooks: a new one (a profiler, the distributed pieces) is a
// file of its own plus a line here.
func hooks(cfg *config.File) ([]train.Hook, error) {
	var hs []train.Hook
	if cfg.Distill.Loss != "" {
		d, err := train.NewDistill(cfg)
		if err != nil {
			return nil, err
		}
		hs = append(hs, d)
	}
	return hs, nil
}
