package config

import (
	"fmt"
	"math"
	"reflect"

	"github.com/skd-go/skd/kd"
	"github.com/skd-go/skd/model/modelcfg"
)

// File is the schema of a project configuration file (configs/*.yaml).
// Fields absent from a file keep the values of Default().
type File struct {
	Model   modelcfg.Config `yaml:"model"`
	Input   InputConfig     `yaml:"input"`
	Data    DataConfig      `yaml:"data"`
	Solver  SolverConfig    `yaml:"solver"`
	Train   TrainConfig     `yaml:"train"`
	Teacher TeacherConfig   `yaml:"teacher"`
	Distill DistillConfig   `yaml:"distill"`

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
	// MaxImagePixels refuses images whose header claims more than this
	// many pixels (width x height) before decoding them (PIL's
	// decompression-bomb limit by default).
	MaxImagePixels int64 `yaml:"max_image_pixels"`
	// MaxUnreadable is the fraction of training images that may be
	// skipped as unreadable before training stops with an error naming
	// examples (each skip is logged once).
	MaxUnreadable float64 `yaml:"max_unreadable"`
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
	// Loss is "" (none) or a registered loss (kd.Losses: ssim, l1, l2,
	// pkd, cwd, mgd).
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
		Model: modelcfg.Defaults(),
		Input: InputConfig{Format: "torchvision", MinSize: []int{800}, MinSizeTest: 800, MaxSize: 1333, SizeDivisible: 32, FlipProb: 0.5},
		Data: DataConfig{Workers: 2, Labels: "contiguous", AspectGrouping: true, MaxImagePixels: defaultMaxImagePixels,
			MaxUnreadable: 0.01},
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

// defaultMaxImagePixels is data.DefaultMaxImagePixels (PIL's limit).
const defaultMaxImagePixels = 178956970

// Validate checks the sections that have no validation of their own. Each
// error names the key (or the keys) at fault and the value found.
func (f *File) Validate() error {
	if err := checkFinite(reflect.ValueOf(f).Elem(), ""); err != nil {
		return err
	}
	if err := checkModelKeys(&f.Model); err != nil {
		return err
	}
	if err := f.Model.Validate(); err != nil {
		return err
	}
	in := f.Input
	if in.Format != "torchvision" && in.Format != "caffe" {
		return fmt.Errorf("input.format %q: want torchvision or caffe", in.Format)
	}
	if len(in.MinSize) == 0 {
		return fmt.Errorf("input.min_size is empty: want at least one size > 0")
	}
	for i, m := range in.MinSize {
		if m <= 0 {
			return fmt.Errorf("input.min_size[%d] is %d: want > 0", i, m)
		}
	}
	for _, c := range []struct {
		key string
		v   int
	}{{"input.min_size_test", in.MinSizeTest}, {"input.max_size", in.MaxSize}, {"input.size_divisible", in.SizeDivisible}} {
		if c.v <= 0 {
			return fmt.Errorf("%s is %d: want > 0", c.key, c.v)
		}
	}
	if !finite(in.FlipProb) || in.FlipProb < 0 || in.FlipProb > 1 {
		return fmt.Errorf("input.flip_prob is %v: want a probability in [0, 1]", in.FlipProb)
	}
	if f.Data.Labels != "contiguous" && f.Data.Labels != "category_id" {
		return fmt.Errorf("data.labels %q: want contiguous or category_id", f.Data.Labels)
	}
	if f.Data.Workers < 0 {
		return fmt.Errorf("data.workers is %d: want >= 0", f.Data.Workers)
	}
	if f.Data.MaxImagePixels <= 0 {
		return fmt.Errorf("data.max_image_pixels is %d: want > 0", f.Data.MaxImagePixels)
	}
	if !finite(f.Data.MaxUnreadable) || f.Data.MaxUnreadable < 0 || f.Data.MaxUnreadable > 1 {
		return fmt.Errorf("data.max_unreadable is %v: want a fraction in [0, 1]", f.Data.MaxUnreadable)
	}
	s := f.Solver
	for _, c := range []struct {
		key string
		v   int
	}{{"solver.ims_per_batch", s.IMSPerBatch}, {"solver.max_iter", s.MaxIter}} {
		if c.v <= 0 {
			return fmt.Errorf("%s is %d: want > 0", c.key, c.v)
		}
	}
	if s.WarmupIters < 0 {
		return fmt.Errorf("solver.warmup_iters is %d: want >= 0", s.WarmupIters)
	}
	for _, c := range []struct {
		key    string
		v      float64
		ok     bool
		domain string
	}{
		{"solver.base_lr", s.BaseLR, s.BaseLR > 0, "> 0"},
		{"solver.momentum", s.Momentum, s.Momentum >= 0 && s.Momentum < 1, "in [0, 1)"},
		{"solver.weight_decay", s.WeightDecay, s.WeightDecay >= 0, ">= 0"},
		{"solver.gamma", s.Gamma, s.Gamma > 0, "> 0"},
		{"solver.warmup_factor", s.WarmupFactor, s.WarmupFactor >= 0 && s.WarmupFactor <= 1, "in [0, 1]"},
		{"solver.clip_grad_norm", s.ClipGradNorm, s.ClipGradNorm >= 0, ">= 0 (0: no clipping)"},
		{"distill.weight", f.Distill.Weight, f.Distill.Weight >= 0, ">= 0"},
	} {
		if !finite(c.v) || !c.ok {
			return fmt.Errorf("%s is %v: want a finite value %s", c.key, c.v, c.domain)
		}
	}
	for k, v := range f.Distill.Options {
		if !finite(v) {
			return fmt.Errorf("distill.options.%s is %v: want a finite value", k, v)
		}
	}
	for i, st := range s.Steps {
		if st <= 0 || (i > 0 && st <= s.Steps[i-1]) {
			return fmt.Errorf("solver.steps %v must be positive and increasing", s.Steps)
		}
	}
	t := f.Train
	for _, c := range []struct {
		key string
		v   int
	}{{"train.log_period", t.LogPeriod}, {"train.checkpoint_period", t.CheckpointPeriod}, {"train.eval_period", t.EvalPeriod}, {"train.eval_max_images", t.EvalMaxImages}} {
		if c.v < 0 {
			return fmt.Errorf("%s is %d: want >= 0", c.key, c.v)
		}
	}
	if err := kd.CheckLossName("distill.loss", f.Distill.Loss); err != nil {
		return err
	}
	if f.Distill.Loss != "" && f.Teacher.Config == "" {
		return fmt.Errorf("distill.loss %q needs teacher.config", f.Distill.Loss)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
