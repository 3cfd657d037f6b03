// Package backbone builds ResNet bodies (BasicBlock ResNet-18/34,
// Bottleneck ResNet-50/101) on the project's layers, with torchvision's
// parameter names, FrozenBatchNorm2d throughout and frozen stages.
package backbone

import (
	"fmt"
	"math/rand"

	"github.com/skd-go/skd/layers"
)

// Config selects a ResNet.
type Config struct {
	// Depth is 18, 34, 50 or 101.
	Depth int `yaml:"depth"`
	// WidthMult scales every channel count (1 = torchvision's widths);
	// tiny test and student models use e.g. 0.25.
	WidthMult float64 `yaml:"width_mult"`
	// StrideInOneByOne puts a bottleneck's stride on its first 1x1 conv
	// (caffe/MSRA, detectron2) instead of the 3x3 (torchvision).
	StrideInOneByOne bool `yaml:"stride_in_1x1"`
	// FrozenStages freezes the stem (>= 1) and the first N-1 further...
	// precisely: 0 = nothing frozen, 1 = stem + layer1 frozen (torchvision's
	// trainable_layers=3), 2 = stem + layer1-2, ... up to 4. -1 freezes
	// nothing, as 0.
	FrozenStages int `yaml:"frozen_stages"`
	// BNEps is FrozenBatchNorm2d's eps (torchvision 1e-5; its legacy COCO
	// weights use 0).
	BNEps float64 `yaml:"bn_eps"`
	// ResidualScale, when > 0, sets the (frozen) scale of the last BN of
	// every residual branch at Init, so that a network trained from
	// scratch with FrozenBN starts close to the identity (SkipInit-style;
	// torchvision's zero_init_residual would freeze the branch at zero).
	// 0 keeps the identity BN. Loaded weights override it.
	ResidualScale float64 `yaml:"residual_scale"`
	// TrainBNAffine makes every BN's weight and bias trainable while its
	// statistics stay frozen (mmdetection's requires_grad=True with
	// norm_eval=True); useful when training from scratch, where identity
	// FrozenBN leaves the backbone without any bias.
	TrainBNAffine bool `yaml:"train_bn_affine"`
	// Norm is "FrozenBN" (default: torchvision's FrozenBatchNorm2d, fixed
	// statistics) or "BN": training-mode BatchNorm2d in the trainable
	// stages (batch statistics while training, running statistics updated
	// with momentum 0.1 and used for inference; detectron2's norm "BN"),
	// for training from scratch. Frozen stages keep FrozenBN. "SyncBN" is
	// "BN" whose batch statistics are those of the whole data-parallel
	// batch (torch.nn.SyncBatchNorm; the trainer connects it to its ranks
	// with SetStatReducer; in one process it is exactly "BN").
	Norm string `yaml:"norm"`
	// Prefix goes before every parameter name, e.g. "backbone.body.".
	Prefix string `yaml:"-"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch c.Depth {
	case 18, 34, 50, 101, 152:
	default:
		return fmt.Errorf("backbone: depth %d not supported (18, 34, 50, 101, 152)", c.Depth)
	}
	if c.WidthMult <= 0 {
		return fmt.Errorf("backbone: width_mult must be > 0, got %v", c.WidthMult)
	}
	if c.FrozenStages < -1 || c.FrozenStages > 4 {
		return fmt.Errorf("backbone: frozen_stages must be in [-1, 4], got %d", c.FrozenStages)
	}
	if c.ResidualScale < 0 {
		return fmt.Errorf("backbone: residual_scale must be >= 0")
	}
	switch c.Norm {
	case "", "FrozenBN", "BN", "SyncBN":
	default:
		return fmt.Errorf("backbone: norm %q not supported (FrozenBN, BN, SyncBN)", c.Norm)
	}
	if c.BNEps < 0 {
		return fmt.Errorf("backbone: bn_eps must be >= 0")
	}
	return nil
}

type block struct {
	conv1, conv2, conv3 *layers.Conv2d
	bn1, bn2, bn3       *layers.BatchNorm2d
	down                *layers.Conv2d
	downBN              *layers.BatchNorm2d
}

// ResNet is a registered ResNet body (no fc).
type ResNet struct {
	Cfg        Config
	conv1      *layers.Conv2d
	bn1        *layers.BatchNorm2d
	stages     [4][]block
	bottleneck bool
	// OutChannels are the channels of C2..C5.
	OutChannels [4]int
}

// bnMomentum is torch.nn.BatchNorm2d's default running-statistics momentum.
const bnMomentum = 0.1

func stageBlocks(depth int) ([4]int, bool) {
	switch depth {
	case 18:
		return [4]int{2, 2, 2, 2}, false
	case 34:
		return [4]int{3, 4, 6, 3}, false
	case 50:
		return [4]int{3, 4, 6, 3}, true
	case 101:
		return [4]int{3, 4, 23, 3}, true
	default: // 152
		return [4]int{3, 8, 36, 3}, true
	}
}

func scaled(c int, m float64) int {
	v := int(float64(c)*m + 0.5)
	if v < 1 {
		v = 1
	}
	return v
}

// NewResNet registers a ResNet body's parameters in reg.
func NewResNet(reg *layers.Registry, cfg Config) (*ResNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	eps := float32(cfg.BNEps)
	pf := cfg.Prefix
	r := &ResNet{Cfg: cfg}
	counts, bottleneck := stageBlocks(cfg.Depth)
	r.bottleneck = bottleneck
	stem := scaled(64, cfg.WidthMult)
	r.conv1 = layers.NewConv2d(reg, pf+"conv1", 3, stem, 7, 2, 3, 1, false)
	r.bn1 = layers.NewFrozenBN(reg, pf+"bn1", stem, eps)
	in := stem
	expansion := 1
	if bottleneck {
		expansion = 4
	}
	for s := 0; s < 4; s++ {
		width := scaled(64<<s, cfg.WidthMult)
		out := width * expansion
		stride := 1
		if s > 0 {
			stride = 2
		}
		for i := 0; i < counts[s]; i++ {
			name := fmt.Sprintf("%slayer%d.%d.", pf, s+1, i)
			st := 1
			if i == 0 {
				st = stride
			}
			var b block
			if bottleneck {
				s1, s3 := 1, st
				if cfg.StrideInOneByOne {
					s1, s3 = st, 1
				}
				b.conv1 = layers.NewConv2d(reg, name+"conv1", in, width, 1, s1, 0, 1, false)
				b.bn1 = layers.NewFrozenBN(reg, name+"bn1", width, eps)
				b.conv2 = layers.NewConv2d(reg, name+"conv2", width, width, 3, s3, 1, 1, false)
				b.bn2 = layers.NewFrozenBN(reg, name+"bn2", width, eps)
				b.conv3 = layers.NewConv2d(reg, name+"conv3", width, out, 1, 1, 0, 1, false)
				b.bn3 = layers.NewFrozenBN(reg, name+"bn3", out, eps)
			} else {
				b.conv1 = layers.NewConv2d(reg, name+"conv1", in, width, 3, st, 1, 1, false)
				b.bn1 = layers.NewFrozenBN(reg, name+"bn1", width, eps)
				b.conv2 = layers.NewConv2d(reg, name+"conv2", width, out, 3, 1, 1, 1, false)
				b.bn2 = layers.NewFrozenBN(reg, name+"bn2", out, eps)
			}
			if i == 0 && (st != 1 || in != out) {
				b.down = layers.NewConv2d(reg, name+"downsample.0", in, out, 1, st, 0, 1, false)
				b.downBN = layers.NewFrozenBN(reg, name+"downsample.1", out, eps)
			}
			r.stages[s] = append(r.stages[s], b)
			in = out
		}
		r.OutChannels[s] = out
	}
	if cfg.TrainBNAffine {
		r.bn1.TrainAffine()
		for _, st := range r.stages {
			for _, b := range st {
				for _, bn := range []*layers.BatchNorm2d{b.bn1, b.bn2, b.bn3, b.downBN} {
					if bn != nil {
						bn.TrainAffine()
					}
				}
			}
		}
	}
	if cfg.Norm == "BN" || cfg.Norm == "SyncBN" {
		// batch statistics in the stages that train (detectron2 turns the
		// frozen ones into FrozenBN)
		if cfg.FrozenStages < 1 {
			r.bn1.UseBatchStats(bnMomentum)
		}
		for s, st := range r.stages {
			if s+1 <= cfg.FrozenStages {
				continue
			}
			for _, b := range st {
				for _, bn := range []*layers.BatchNorm2d{b.bn1, b.bn2, b.bn3, b.downBN} {
					if bn != nil {
						bn.UseBatchStats(bnMomentum)
					}
				}
			}
		}
	}
	if cfg.FrozenStages >= 1 {
		reg.FreezePrefix(pf + "bn1.")
		reg.FreezePrefix(pf + "conv1.")
		for s := 1; s <= cfg.FrozenStages; s++ {
			reg.FreezePrefix(fmt.Sprintf("%slayer%d.", pf, s))
		}
	}
	return r, nil
}

// Init fills the convolution weights as torchvision's ResNet does
// (kaiming normal, fan-out); FrozenBN stays the identity.
func (r *ResNet) Init(rng *rand.Rand) {
	convs := []*layers.Conv2d{r.conv1}
	for _, st := range r.stages {
		for _, b := range st {
			convs = append(convs, b.conv1, b.conv2)
			if b.conv3 != nil {
				convs = append(convs, b.conv3)
			}
			if b.down != nil {
				convs = append(convs, b.down)
			}
		}
	}
	for _, c := range convs {
		layers.KaimingNormalFanOut(c.Weight, rng)
	}
	if r.Cfg.ResidualScale > 0 {
		for _, st := range r.stages {
			for _, b := range st {
				last := b.bn2
				if b.bn3 != nil {
					last = b.bn3
				}
				layers.Constant(last.Weight, float32(r.Cfg.ResidualScale))
			}
		}
	}
}
