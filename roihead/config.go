// Package roihead is Faster R-CNN's second stage, as torchvision 0.14's
// RoIHeads: the box head (BoxHead: TwoMLPHead + FastRCNNPredictor on
// pooled RoI features), proposal sampling with box and class targets, the
// classification and box losses, and detection post-processing. Stage
// holds one compiled program's part of it (RoI rows, targets, losses,
// kept outputs).
package roihead

import "fmt"

// Config holds the RoI heads' settings (torchvision defaults in Defaults).
type Config struct {
	// NumClasses counts the background (index 0) as torchvision does.
	NumClasses         int     `yaml:"num_classes"`
	RepresentationSize int     `yaml:"representation_size"`
	PoolSize           int     `yaml:"pool_size"`
	SamplingRatio      int     `yaml:"sampling_ratio"`
	Aligned            bool    `yaml:"aligned"`
	LevelMapperEps     float64 `yaml:"level_mapper_eps"`
	// CanonicalScale is the box side (input pixels) that the FPN level
	// mapper puts on level 4 (P4): level = floor(4 + log2(side / scale)),
	// clamped to P2-P5. torchvision and detectron2 use 224 (mmdetection's
	// finest_scale 56 is the same rule); small inputs may want less so
	// that large objects are pooled from the coarser, more semantic levels.
	CanonicalScale   float64    `yaml:"canonical_scale"`
	FgIoUThresh      float32    `yaml:"fg_iou_thresh"`
	BgIoUThresh      float32    `yaml:"bg_iou_thresh"`
	BatchSizePerImg  int        `yaml:"batch_size_per_image"`
	PositiveFraction float64    `yaml:"positive_fraction"`
	BBoxRegWeights   [4]float32 `yaml:"bbox_reg_weights"`
	ScoreThresh      float32    `yaml:"score_thresh"`
	NMSThresh        float64    `yaml:"nms_thresh"`
	DetectionsPerImg int        `yaml:"detections_per_img"`
	MinSize          float32    `yaml:"min_size"`
	// SmoothL1Beta is the box loss's beta; 0 gives L1 (detectron2).
	SmoothL1Beta float32 `yaml:"smooth_l1_beta"`
}

// Defaults returns torchvision's fasterrcnn_resnet50_fpn settings for 91
// classes (COCO with background and torchvision's unused ids).
func Defaults() Config {
	return Config{
		NumClasses:         91,
		RepresentationSize: 1024,
		PoolSize:           7,
		SamplingRatio:      2,
		Aligned:            false,
		LevelMapperEps:     1e-6,
		CanonicalScale:     224,
		FgIoUThresh:        0.5,
		BgIoUThresh:        0.5,
		BatchSizePerImg:    512,
		PositiveFraction:   0.25,
		BBoxRegWeights:     [4]float32{10, 10, 5, 5},
		ScoreThresh:        0.05,
		NMSThresh:          0.5,
		DetectionsPerImg:   100,
		MinSize:            1e-2,
		SmoothL1Beta:       1.0 / 9,
	}
}

// Validate checks the settings.
func (c Config) Validate() error {
	switch {
	case c.NumClasses < 2:
		return fmt.Errorf("roi_heads: num_classes %d must count the background and at least one class", c.NumClasses)
	case c.RepresentationSize <= 0 || c.PoolSize <= 0:
		return fmt.Errorf("roi_heads: representation_size and pool_size must be > 0")
	case c.BgIoUThresh > c.FgIoUThresh:
		return fmt.Errorf("roi_heads: bg_iou_thresh %v > fg_iou_thresh %v", c.BgIoUThresh, c.FgIoUThresh)
	case c.BatchSizePerImg <= 0 || c.PositiveFraction <= 0 || c.PositiveFraction > 1:
		return fmt.Errorf("roi_heads: bad sampler settings")
	case c.DetectionsPerImg <= 0:
		return fmt.Errorf("roi_heads: detections_per_img must be > 0")
	case c.NMSThresh <= 0 || c.NMSThresh > 1:
		return fmt.Errorf("roi_heads: nms_thresh %v not in (0, 1]", c.NMSThresh)
	case !(c.CanonicalScale > 0):
		return fmt.Errorf("roi_heads: canonical_scale %v must be > 0", c.CanonicalScale)
	case c.SmoothL1Beta < 0:
		return fmt.Errorf("roi_heads: smooth_l1_beta must be >= 0")
	}
	return nil
}
