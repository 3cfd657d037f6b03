// Package modelcfg is the Faster R-CNN's configuration (the `model:`
// section of a configuration file): the backbone's, the RPN's and the RoI
// heads' settings. It is apart from package model so that the
// configuration schema (package config) needs no detector code; model
// re-exports it as model.Config.
package modelcfg

import (
	"fmt"

	"github.com/skd-go/skd/backbone"
	"github.com/skd-go/skd/roihead"
	"github.com/skd-go/skd/rpn"
)

// Config describes a Faster R-CNN with an FPN.
type Config struct {
	Backbone    backbone.Config `yaml:"backbone"`
	FPNChannels int             `yaml:"fpn_channels"`
	RPN         rpn.Config      `yaml:"rpn"`
	RoI         roihead.Config  `yaml:"roi_heads"`
	// LevelMapperEpsInsideLog selects detectron2's RoI level formula.
	LevelMapperEpsInsideLog bool `yaml:"level_mapper_eps_inside_log"`
	// PredictorInit is "torchvision" (nn.Linear defaults) or "detectron2"
	// (cls_score N(0, 0.01), bbox_pred N(0, 0.001), zero biases).
	PredictorInit string `yaml:"predictor_init"`
}

// Defaults returns torchvision's fasterrcnn_resnet50_fpn.
func Defaults() Config {
	return Config{
		Backbone:      backbone.Config{Depth: 50, WidthMult: 1, FrozenStages: 1, BNEps: 1e-5},
		FPNChannels:   256,
		RPN:           rpn.Defaults(),
		RoI:           roihead.Defaults(),
		PredictorInit: "torchvision",
	}
}

// Validate checks every section.
func (c Config) Validate() error {
	if err := c.Backbone.Validate(); err != nil {
		return err
	}
	if c.FPNChannels <= 0 {
		return fmt.Errorf("model: fpn_channels must be > 0")
	}
	if err := c.RPN.Validate(); err != nil {
		return err
	}
	if err := c.RoI.Validate(); err != nil {
		return err
	}
	if c.PredictorInit != "torchvision" && c.PredictorInit != "detectron2" {
		return fmt.Errorf("model: predictor_init %q (want torchvision or detectron2)", c.PredictorInit)
	}
	return nil
}
