// Package train is the training engine, after detectron2's engine: a
// Trainer whose step (runStep: forward/backward, NaN guard, clipping, SGD
// with momentum) is all the loop does itself, and hooks (Hook: the
// warmup + multi-step LR schedule, logging, periodic evaluation with the
// best checkpoint, atomic checkpoints, plots, distillation) around it,
// with their states in checkpoints for an exact resume.
package train

import (
	"fmt"
	"math"
	"sort"

	"github.com/skd-go/skd/layers"
)

// SGD is PyTorch's torch.optim.SGD with momentum (dampening 0, not
// Nesterov): with weight decay wd, g' = g + wd*p; buf = g' on the first
// step, else buf = momentum*buf + g'; p -= lr*buf.
type SGD struct {
	Momentum    float64
	WeightDecay float64
	// NoDecayNormBias skips weight decay on parameters marked NoDecay
	// (biases) and on 1-D parameters (norm weights).
	NoDecayNormBias bool
	// Buffers holds the momentum buffer of each parameter by name.
	Buffers map[string][]float32
}

// NewSGD returns an optimizer with empty momentum buffers.
func NewSGD(momentum, weightDecay float64, noDecayNormBias bool) *SGD {
	return &SGD{Momentum: momentum, WeightDecay: weightDecay, NoDecayNormBias: noDecayNormBias, Buffers: map[string][]float32{}}
}

func (s *SGD) decay(p *layers.Param) float64 {
	if s.NoDecayNormBias && (p.NoDecay || len(p.Shape()) == 1) {
		return 0
	}
	return s.WeightDecay
}

// Step updates every parameter with its gradient at learning rate lr.
func (s *SGD) Step(params []*layers.Param, grads [][]float32, lr float64) error {
	if len(params) != len(grads) {
		return fmt.Errorf("sgd: %d parameters, %d gradients", len(params), len(grads))
	}
	mom, lr32 := float32(s.Momentum), float32(lr)
	for i, p := range params {
		w, g := p.Data(), grads[i]
		if len(w) != len(g) {
			return fmt.Errorf("sgd: %s has %d values, gradient %d", p.Name, len(w), len(g))
		}
		wd := float32(s.decay(p))
		buf, ok := s.Buffers[p.Name]
		if !ok || s.Momentum == 0 {
			if !ok {
				buf = make([]float32, len(w))
				s.Buffers[p.Name] = buf
			}
			for j := range w {
				d := g[j] + wd*w[j]
				buf[j] = d
				w[j] -= lr32 * d
			}
			continue
		}
		for j := range w {
			d := g[j] + wd*w[j]
			buf[j] = mom*buf[j] + d
			w[j] -= lr32 * buf[j]
		}
	}
	return nil
}

// ClipGradNorm scales the gradients so that their global L2 norm is at
// most maxNorm (torch.nn.utils.clip_grad_norm_: factor maxNorm/(norm+1e-6)
// when it is below 1) and returns the norm before clipping.
func ClipGradNorm(grads [][]float32, maxNorm float64) float64 {
	var sum float64
	for _, g := range grads {
		for _, v := range g {
			sum += float64(v) * float64(v)
		}
	}
	norm := math.Sqrt(sum)
	if maxNorm > 0 && norm > maxNorm {
		f := float32(maxNorm / (norm + 1e-6))
		for _, g := range grads {
			for j := range g {
				g[j] *= f
			}
		}
	}
	return norm
}

// Schedule is detectron2's WarmupMultiStepLR: linear warmup from
// base*factor to base over WarmupIters, then times Gamma at each step.
type Schedule struct {
	BaseLR       float64
	WarmupIters  int
	WarmupFactor float64
	Steps        []int
	Gamma        float64
}

// LR returns the learning rate of iteration it (0-based).
func (s Schedule) LR(it int) float64 {
	f := 1.0
	if it < s.WarmupIters {
		alpha := float64(it) / float64(s.WarmupIters)
		f = s.WarmupFactor*(1-alpha) + alpha
	}
	k := sort.SearchInts(s.Steps, it+1) // bisect_right(steps, it)
	return s.BaseLR * f * math.Pow(s.Gamma, float64(k))
}
