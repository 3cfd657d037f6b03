package config

import (
	"fmt"

	"github.com/skd-go/skd/model"
)

// File is the schema of a project configuration file (configs/*.yaml).
// Fields absent from a file keep the values of Default().
type File struct {
	Model   model.Config  `yaml:"model"`
	Input   InputConfig   `yaml:"input"`
	Data    DataConfig    `yaml:"data"`
	Solver  SolverConfig  `yaml:"solver"`
	Train   TrainConfig   `yaml:"train"`
	Teacher TeacherConfig `yaml:"teacher"`
	Distill DistillConfig `yaml:"distill"`

	// Path is the file the configuration was loaded from (not in YAML).
	Path string `yaml:"-"`
}

// InputConfig is the image transform (package data's TransformConfig).
type InputConfig struct {
	// Format is "torchvision" (RGB in [0,1], ImageNet mean/std) or "caffe"
	// (BGR 0-255, mean 103.53/116.28/123.675, std 1).
	Format string `yaml:"format"`
	// MinSize: training picks one per image; MinSizeTest is used in
	// evaluation and inference.
	MinSize       []int   `yaml:"min_size"`
	MinSizeTest   int     `yaml:"min_size_test"`
	MaxSize       int     `yaml:"max_size"`
	SizeDivisible int     `yaml:"size_divisible"`
	FlipProb      float64 `yaml:"flip_prob"`
}

// DatasetConfig names a COCO-format split.
type DatasetConfig struct {
	Ann    string `yaml:"ann"`
	Images string `yaml:"images"`
}

// SynthConfig generates the embedded synthetic dataset on first use into
// Dir (then Train/Val splits default to its files).
type SynthConfig struct {
	Dir   string `yaml:"dir"`
	Train int    `yaml:"train"`
	Val   int    `yaml:"val"`
	Seed  int64  `yaml:"seed"`
	Size  int    `yaml:"size"`
	// Sizes "coco" gives COCO-like image shapes (Size is the long side).
	Sizes string `yaml:"sizes,omitempty"`
	// Variant "hard": the distillation study's harder set (16 classes).
	Variant string `yaml:"variant,omitempty"`
	// Holdout > 0 adds a held-out training split (synth.HoldoutAnnotations).
	Holdout int `yaml:"holdout,omitempty"`
}

// DataConfig selects the datasets and the loader.
type DataConfig struct {
	Train DatasetConfig `yaml:"train"`
	Val   DatasetConfig `yaml:"val"`
	// Synth, when Dir is set, makes the synthetic set and uses it.
	Synth   SynthConfig `yaml:"synth"`
	Workers int         `yaml:"workers"`
	// Labels is "contiguous" (dataset categories sorted by id -> 1..K) or
	// "category_id" (label = COCO category id, torchvision's 91-class COCO
	// models).
	Labels string `yaml:"labels"`
	// ClassNames name labels 1.. when no annotation file is at hand
	// (kddetect on plain images).
	ClassNames []string `yaml:"class_names"`
	// AspectGrouping batches wide and tall images separately.
	AspectGrouping bool `yaml:"aspect_grouping"`
}

// SolverConfig is SGD with momentum, warmup and multi-step decay.
// Linear scaling rule: base_lr 0.02 for 16 images per batch; scale it with
// ims_per_batch (0.0025 for 2).
type SolverConfig struct {
	IMSPerBatch     int     `yaml:"ims_per_batch"`
	BaseLR          float64 `yaml:"base_lr"`
	Momentum        float64 `yaml:"momentum"`
	WeightDecay     float64 `yaml:"weight_decay"`
	NoDecayNormBias bool    `yaml:"no_decay_norm_bias"`
	WarmupIters     int     `yaml:"warmup_iters"`
	WarmupFactor    float64 `yaml:"warmup_factor"`
	Steps           []int   `yaml:"steps"`
	Gamma           float64 `yaml:"gamma"`
	MaxIter         int     `yaml:"max_iter"`
	ClipGradNorm    float64 `yaml:"clip_grad_norm"`
}

// TrainConfig drives the loop.
type TrainConfig struct {
	WorkDir          string `yaml:"work_dir"`
	Seed             int64  `yaml:"seed"`
	LogPeriod        int    `yaml:"log_period"`
	CheckpointPeriod int    `yaml:"checkpoint_period"`
	EvalPeriod       int    `yaml:"eval_period"`
	// InitWeights initialises the model (an ImageNet .pth for the
	// backbone, or a detector's weights); missing heads keep their init.
	InitWeights string `yaml:"init_weights"`
	// InitPrefix is prepended to the file's keys (e.g. "backbone.body."
	// for an ImageNet ResNet).
	InitPrefix string `yaml:"init_prefix"`
	// EvalMaxImages limits periodic evaluation (0: the whole split).
	EvalMaxImages int `yaml:"eval_max_images"`
}

// TeacherConfig names a frozen teacher for distillation.
type TeacherConfig struct {
	Config  string `yaml:"config"`
	Weights string `yaml:"weights"`
}

// DistillConfig selects the feature-distillation loss.
type DistillConfig struct {
	// Loss is "", "ssim", "l1", "l2", "pkd", "cwd" or "mgd" ("" = none).
	Loss   string  `yaml:"loss"`
	Weight float64 `yaml:"weight"`
	// Levels are FPN levels (0 = P2 ... 4 = P6); empty: all.
	Levels  []int `yaml:"levels"`
	Adapter bool  `yaml:"adapter"`
	// Options holds loss-specific settings (window, sigma, tau, ...).
	Options map[string]float64 `yaml:"options"`
	// Normalize is the SSIM min-max granularity: "channel" or "level".
	Normalize string `yaml:"normalize"`
	// Terms is the SSIM ablation: "full" (default), "cs" (no luminance)
	// or "s" (structure only); Padding is "same" (default) or "valid".
	Terms   string `yaml:"terms,omitempty"`
	Padding string `yaml:"padding,omitempty"`
	// SkipTeacherEval skips the teacher's val evaluation at the start of
	// a distillation run (reported as iteration 0): a minute or more per
	// run that repeated runs with one teacher need only once.
	SkipTeacherEval bool `yaml:"skip_teacher_eval,omitempty"`
}

// Default returns the project defaults: torchvision's Faster R-CNN
// R50-FPN on COCO-style data with detectron2's 1x schedule at 16 images.
func Default() File {
	return File{
		Model: model.Defaults(),
		Input: InputConfig{Format: "torchvision", MinSize: []int{800}, MinSizeTest: 800, MaxSize: 1333, SizeDivisible: 32, FlipProb: 0.5},
		Data:  DataConfig{Workers: 2, Labels: "contiguous", AspectGrouping: true},
		Solver: SolverConfig{IMSPerBatch: 16, BaseLR: 0.02, Momentum: 0.9, WeightDecay: 1e-4, WarmupIters: 1000,
			WarmupFactor: 0.001, Steps: []int{60000, 80000}, Gamma: 0.1, MaxIter: 90000},
		Train:   TrainConfig{WorkDir: "work_dirs/default", Seed: 0, LogPeriod: 20, CheckpointPeriod: 5000, EvalPeriod: 0},
		Distill: DistillConfig{Weight: 1, Normalize: "channel"},
	}
}

// LoadFile reads a configuration with _base_ inheritance and --set
// overrides over Default(), checks it, and returns it with its resolved
// YAML. Relative dataset, weight and teacher paths are resolved against
// the current directory (as users type them).
func LoadFile(path string, sets []string) (*File, []byte, error) {
	f := Default()
	resolved, err := Load(path, sets, &f)
	if err != nil {
		return nil, nil, err
	}
	f.Path = path
	if err := f.Validate(); err != nil {
		return nil, nil, &Error{File: path, Msg: err.Error()}
	}
	return &f, resolved, nil
}

// Validate checks the sections that have no validation of their own.
func (f *File) Validate() error {
	if err := f.Model.Validate(); err != nil {
		return err
	}
	if f.Input.Format != "torchvision" && f.Input.Format != "caffe" {
		return fmt.Errorf("input.format %q: want torchvision or caffe", f.Input.Format)
	}
	if len(f.Input.MinSize) == 0 || f.Input.MaxSize <= 0 || f.Input.MinSizeTest <= 0 {
		return fmt.Errorf("input: min_size, min_size_test and max_size must be set")
	}
	if f.Data.Labels != "contiguous" && f.Data.Labels != "category_id" {
		return fmt.Errorf("data.labels %q: want contiguous or category_id", f.Data.Labels)
	}
	s := f.Solver
	if s.IMSPerBatch <= 0 || s.BaseLR <= 0 || s.MaxIter <= 0 {
		return fmt.Errorf("solver: ims_per_batch, base_lr and max_iter must be > 0")
	}
	if s.Momentum < 0 || s.Momentum >= 1 || s.WeightDecay < 0 || s.Gamma <= 0 || s.WarmupFactor < 0 || s.WarmupFactor > 1 {
		return fmt.Errorf("solver: momentum in [0,1), weight_decay >= 0, gamma > 0, warmup_factor in [0,1]")
	}
	for i, st := range s.Steps {
		if st <= 0 || (i > 0 && st <= s.Steps[i-1]) {
			return fmt.Errorf("solver.steps %v must be positive and increasing", s.Steps)
		}
	}
	switch f.Distill.Loss {
	case "", "ssim", "l1", "l2", "pkd", "cwd", "mgd":
	default:
		return fmt.Errorf("distill.loss %q: want ssim, l1, l2, pkd, cwd or mgd", f.Distill.Loss)
	}
	if f.Distill.Loss != "" && f.Teacher.Config == "" {
		return fmt.Errorf("distill.loss %q needs teacher.config", f.Distill.Loss)
	}
	return nil
}
