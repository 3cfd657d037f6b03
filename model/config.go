package model

import "github.com/skd-go/skd/model/modelcfg"

// Config describes a Faster R-CNN with an FPN (package modelcfg).
type Config = modelcfg.Config

// Defaults returns torchvision's fasterrcnn_resnet50_fpn.
func Defaults() Config { return modelcfg.Defaults() }
