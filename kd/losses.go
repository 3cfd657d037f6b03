package kd

import (
	"fmt"
	"math"

	"github.com/skd-go/skd/kernels"
)

// LevelLoss is one feature-distillation loss on one level: the loss of the
// student x against the teacher t, both NCHW of the given shape, and when
// grad is non-nil dLoss/dx written into grad (same length as x). Sums are
// accumulated in float64 per (n, c) plane or channel and added in a fixed
// order, so results do not depend on the number of cores.
type LevelLoss interface {
	Loss(x, t []float32, shape [4]int, grad []float32) (float64, error)
}

// planeSums holds per-plane partial sums, reused across calls.
type planeSums struct{ part []float64 }

func (p *planeSums) sums(n int) []float64 {
	p.part = growF64(p.part, n)
	return p.part
}

func sumAll(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

func checkGrad(name string, x, grad []float32) error {
	if grad != nil && len(grad) != len(x) {
		return fmt.Errorf("%s: gradient buffer has %d values, want %d", name, len(grad), len(x))
	}
	return nil
}

// L1 is mean |x - t| over every element (torch F.l1_loss, reduction
// 'mean'); its derivative is sign(x - t) / numel with sign(0) = 0.
type L1 struct{ planeSums }

// Loss implements LevelLoss.
func (l *L1) Loss(x, t []float32, shape [4]int, grad []float32) (float64, error) {
	if err := checkShape("l1", shape, x, t); err != nil {
		return 0, err
	}
	if err := checkGrad("l1", x, grad); err != nil {
		return 0, err
	}
	planes, hw := shape[0]*shape[1], shape[2]*shape[3]
	total := float64(len(x))
	part := l.sums(planes)
	kernels.ParallelFor(planes, func(a, b int) {
		for p := a; p < b; p++ {
			var s float64
			for i := p * hw; i < (p+1)*hw; i++ {
				d := float64(x[i]) - float64(t[i])
				s += math.Abs(d)
				if grad != nil {
					switch {
					case d > 0:
						grad[i] = float32(1 / total)
					case d < 0:
						grad[i] = float32(-1 / total)
					default:
						grad[i] = 0
					}
				}
			}
			part[p] = s
		}
	})
	return sumAll(part) / total, nil
}

// L2 is mean (x - t)^2 over every element (torch F.mse_loss, reduction
// 'mean'); its derivative is 2 (x - t) / numel.
type L2 struct{ planeSums }

// Loss implements LevelLoss.
func (l *L2) Loss(x, t []float32, shape [4]int, grad []float32) (float64, error) {
	if err := checkShape("l2", shape, x, t); err != nil {
		return 0, err
	}
	if err := checkGrad("l2", x, grad); err != nil {
		return 0, err
	}
	planes, hw := shape[0]*shape[1], shape[2]*shape[3]
	total := float64(len(x))
	part := l.sums(planes)
	kernels.ParallelFor(planes, func(a, b int) {
		for p := a; p < b; p++ {
			var s float64
			for i := p * hw; i < (p+1)*hw; i++ {
				d := float64(x[i]) - float64(t[i])
				s += d * d
				if grad != nil {
					grad[i] = float32(2 * d / total)
				}
			}
			part[p] = s
		}
	})
	return sumAll(part) / total, nil
}

// SumMSE is sum (x - t)^2 / N with N the batch size (MGD's
// nn.MSELoss(reduction='sum') / N); its derivative is 2 (x - t) / N.
type SumMSE struct{ planeSums }

// Loss implements LevelLoss.
func (l *SumMSE) Loss(x, t []float32, shape [4]int, grad []float32) (float64, error) {
	if err := checkShape("sum_mse", shape, x, t); err != nil {
		return 0, err
	}
	if err := checkGrad("sum_mse", x, grad); err != nil {
		return 0, err
	}
	planes, hw := shape[0]*shape[1], shape[2]*shape[3]
	nb := float64(shape[0])
	part := l.sums(planes)
	kernels.ParallelFor(planes, func(a, b int) {
		for p := a; p < b; p++ {
			var s float64
			for i := p * hw; i < (p+1)*hw; i++ {
				d := float64(x[i]) - float64(t[i])
				s += d * d
				if grad != nil {
					grad[i] = float32(2 * d / nb)
				}
			}
			part[p] = s
		}
	})
	return sumAll(part) / nb, nil
}

// PKD is mmrazor's PKDLoss on one level (Cao et al. 2022, "PKD: General
// Distillation Framework for Object Detectors via Pearson Correlation
// Coefficient"): every channel c of student and teacher is normalised
// over its N*H*W values,
//
//	v^ = (v - mean_c) / (std_c + 1e-6),  std_c unbiased (torch.std),
//
// and the loss is F.mse_loss(x^, t^) / 2 = sum (x^ - t^)^2 / (2 numel).
// N*H*W must be at least 2. A constant student channel (std 0) gets the
// derivative of the centring only (its std term is 0 * (0/0), taken as 0;
// torch would give NaN).
type PKD struct {
	part, mean, std []float64
	tmean, tstd     []float64
}

const pkdEps = 1e-6

// chanStats computes each channel's mean and unbiased std over N*H*W.
func chanStats(v []float32, n, c, hw int, mean, std []float64) {
	kernels.ParallelFor(c, func(a, b int) {
		for ch := a; ch < b; ch++ {
			var s float64
			for i := 0; i < n; i++ {
				for _, x := range v[(i*c+ch)*hw : (i*c+ch+1)*hw] {
					s += float64(x)
				}
			}
			m := s / float64(n*hw)
			var q float64
			for i := 0; i < n; i++ {
				for _, x := range v[(i*c+ch)*hw : (i*c+ch+1)*hw] {
					d := float64(x) - m
					q += d * d
				}
			}
			mean[ch], std[ch] = m, math.Sqrt(q/float64(n*hw-1))
		}
	})
}

// Loss implements LevelLoss.
func (l *PKD) Loss(x, t []float32, shape [4]int, grad []float32) (float64, error) {
	if err := checkShape("pkd", shape, x, t); err != nil {
		return 0, err
	}
	if err := checkGrad("pkd", x, grad); err != nil {
		return 0, err
	}
	n, c, hw := shape[0], shape[1], shape[2]*shape[3]
	m := n * hw
	if m < 2 {
		return 0, fmt.Errorf("pkd: a channel holds %d value (N*H*W of shape %v); the unbiased std needs at least 2", m, shape)
	}
	l.part, l.mean, l.std = growF64(l.part, c), growF64(l.mean, c), growF64(l.std, c)
	l.tmean, l.tstd = growF64(l.tmean, c), growF64(l.tstd, c)
	chanStats(x, n, c, hw, l.mean, l.std)
	chanStats(t, n, c, hw, l.tmean, l.tstd)
	total := float64(len(x))
	kernels.ParallelFor(c, func(a, b int) {
		for ch := a; ch < b; ch++ {
			mx, ax := l.mean[ch], l.std[ch]+pkdEps
			mt, at := l.tmean[ch], l.tstd[ch]+pkdEps
			var s, sd, sdx float64
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				for j := off; j < off+hw; j++ {
					dx := float64(x[j]) - mx
					d := dx/ax - (float64(t[j])-mt)/at
					s += d * d
					sd += d
					sdx += d * dx
				}
			}
			l.part[ch] = s
			if grad == nil {
				continue
			}
			// upstream u_j = d_j / numel; dL/dx_j = (u_j - mean u) / a -
			// (x_j - mean) sum_i u_i (x_i - mean) / ((M-1) std a^2)
			meanU := sd / total / float64(m)
			var k2 float64
			if sx := l.std[ch]; sx > 0 {
				k2 = sdx / total / (float64(m-1) * sx * ax * ax)
			}
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				for j := off; j < off+hw; j++ {
					dx := float64(x[j]) - mx
					u := (dx/ax - (float64(t[j])-mt)/at) / total
					grad[j] = float32((u-meanU)/ax - dx*k2)
				}
			}
		}
	})
	return sumAll(l.part) / (2 * total), nil
}

// CWD is mmrazor's ChannelWiseDivergence (Shu et al. 2021, "Channel-wise
// Knowledge Distillation for Dense Prediction"): each (n, c) plane of
// student and teacher becomes a distribution over its H*W positions,
// p = softmax(v / Tau), and
//
//	L = Tau^2 * sum_{n,c} KL(p_t || p_s) / (N * C)
//
// with dL/dx = Tau (p_s - p_t) / (N * C). Tau must be > 0 (mmrazor: 1).
type CWD struct {
	Tau float64
	planeSums
}

// Loss implements LevelLoss.
func (l *CWD) Loss(x, t []float32, shape [4]int, grad []float32) (float64, error) {
	if err := checkShape("cwd", shape, x, t); err != nil {
		return 0, err
	}
	if err := checkGrad("cwd", x, grad); err != nil {
		return 0, err
	}
	tau := l.Tau
	if !(tau > 0) || math.IsInf(tau, 1) {
		return 0, fmt.Errorf("cwd: temperature %v, want a finite value > 0", tau)
	}
	planes, hw := shape[0]*shape[1], shape[2]*shape[3]
	nc := float64(planes)
	part := l.sums(planes)
	kernels.ParallelFor(planes, func(a, b int) {
		for p := a; p < b; p++ {
			xs, ts := x[p*hw:(p+1)*hw], t[p*hw:(p+1)*hw]
			mxs, lses := planeLSE(xs, tau)
			mxt, lset := planeLSE(ts, tau)
			var s float64
			for i := range xs {
				lt := float64(ts[i])/tau - mxt - lset
				ls := float64(xs[i])/tau - mxs - lses
				pt := math.Exp(lt)
				s += pt * (lt - ls)
				if grad != nil {
					grad[p*hw+i] = float32(tau * (math.Exp(ls) - pt) / nc)
				}
			}
			part[p] = s
		}
	})
	return tau * tau * sumAll(part) / nc, nil
}

// planeLSE returns max(v/tau) and log sum exp(v/tau - max).
func planeLSE(v []float32, tau float64) (float64, float64) {
	m := math.Inf(-1)
	for _, x := range v {
		m = max(m, float64(x)/tau)
	}
	var s float64
	for _, x := range v {
		s += math.Exp(float64(x)/tau - m)
	}
	return m, math.Log(s)
}
