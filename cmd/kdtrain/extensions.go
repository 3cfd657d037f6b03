package main

import (
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/train"
)

// extensions returns what the configuration adds to plain training:
// distillation when distill.loss is set.
func extensions(cfg *config.File) ([]train.Extension, error) {
	if cfg.Distill.Loss == "" {
		return nil, nil
	}
	d, err := train.NewDistill(cfg)
	if err != nil {
		return nil, err
	}
	return []train.Extension{d}, nil
}
