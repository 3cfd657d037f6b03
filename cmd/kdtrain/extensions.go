package main

import (
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/train"
)

// extensions returns what the configuration adds to plain training.
func extensions(cfg *config.File) ([]train.Extension, error) {
	return nil, nil
}
