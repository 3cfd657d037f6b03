package kd

import (
	"fmt"
	"math"
	"math/rand"
	"strings"

	G "gorgonia.org/gorgonia"

	"github.com/skd-go/skd/layers"
)

// Config selects the distillation loss. Zero fields take the defaults in
// brackets.
type Config struct {
	// Loss is a registered loss (Losses): "ssim" [default] (the paper),
	// "l1", "l2", "pkd", "cwd" or "mgd".
	Loss string
	// Weight is lambda in L_total = L_det + lambda * sum_levels L(level);
	// 0 takes the loss's default: ssim 2 (the paper: 2 to 4 worked best),
	// l1 1, l2 1, pkd 6 (mmrazor Faster R-CNN config), cwd 10 (mmrazor),
	// mgd 2e-5 (alpha_mgd). A negative weight is an error.
	Weight float64
	// Levels lists the indices (into the student's and teacher's level
	// lists) of the distilled levels [all].
	Levels []int
	// Adapter adds a trainable 1x1 conv with bias on each student level,
	// student channels -> teacher channels (`distill.adapter.{level}`;
	// MGD's align). Without it the channel counts must agree.
	Adapter bool
	// SSIM options: Window [11], Sigma [1.5], Padding ["same"],
	// Normalize ["channel"], Terms ["full"] (see SSIMConfig).
	Window    int
	Sigma     float64
	Padding   string
	Normalize string
	Terms     string
	// Tau is CWD's temperature [1].
	Tau float64
	// MaskRatio is MGD's masked fraction lambda_mgd [0.65].
	MaskRatio float64
}

// DefaultWeight returns the loss weight lambda used when Config.Weight is
// 0 (the registry's; "" is the default loss, ssim; 1 for an unknown loss).
func DefaultWeight(loss string) float64 {
	if loss == "" {
		loss = registry[0].Name
	}
	if s, ok := LookupLoss(loss); ok {
		return s.DefaultWeight
	}
	return 1
}

// WithDefaults returns the configuration with zero fields filled in
// (Levels stays empty: all levels).
func (c Config) WithDefaults() Config {
	if c.Loss == "" {
		c.Loss = registry[0].Name
	}
	if c.Weight == 0 {
		c.Weight = DefaultWeight(c.Loss)
	}
	if c.Tau == 0 {
		c.Tau = 1
	}
	if c.MaskRatio == 0 {
		c.MaskRatio = 0.65
	}
	s := c.ssim()
	c.Window, c.Sigma, c.Padding, c.Normalize, c.Terms = s.Window, s.Sigma, s.Padding, s.Normalize, s.Terms
	return c
}

func (c Config) ssim() SSIMConfig {
	return SSIMConfig{Window: c.Window, Sigma: c.Sigma, Padding: c.Padding, Normalize: c.Normalize, Terms: c.Terms}.withDefaults()
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if _, ok := LookupLoss(c.Loss); !ok {
		return fmt.Errorf("kd: loss %q, want one of %s", c.Loss, strings.Join(LossNames(), ", "))
	}
	if !(c.Weight >= 0) || math.IsInf(c.Weight, 1) {
		return fmt.Errorf("kd: weight %v, want a finite value >= 0", c.Weight)
	}
	if !(c.Tau > 0) || math.IsInf(c.Tau, 1) {
		return fmt.Errorf("kd: tau %v, want a finite value > 0", c.Tau)
	}
	if !(c.MaskRatio >= 0 && c.MaskRatio <= 1) {
		return fmt.Errorf("kd: mask ratio %v, want a value in [0, 1]", c.MaskRatio)
	}
	if err := c.ssim().validate(); err != nil {
		return fmt.Errorf("kd: %w", err)
	}
	return nil
}

// Distiller holds the distillation's trainable parameters (adapters, MGD
// generators) in a registry and builds the loss into any number of
// student graphs (one per input shape).
type Distiller struct {
	Cfg       Config
	StudentCh []int
	TeacherCh []int
	// MaskSource draws MGD's masks, one draw per spatial position per run
	// (the rng given to NewDistiller unless replaced; replace it before
	// running, not between a run's forward and backward). Graphs built by
	// one Distiller share it and their per-level values: run them one at
	// a time.
	MaskSource MaskSource

	levels    []int
	adapters  map[int]*layers.Conv2d
	gen0      map[int]*layers.Conv2d
	gen2      map[int]*layers.Conv2d
	ops       map[*G.Node]*levelOp
	lastGraph []*levelOp
}

// NewDistiller validates cfg and registers the trainable parameters in reg:
// with Adapter, `distill.adapter.{level}.weight` [Ct, Cs, 1, 1] and
// `.bias` [Ct]; with MGD, `distill.mgd.generator.{level}.0.weight`
// [Ct, Ct, 3, 3], `.0.bias`, `.2.weight`, `.2.bias` (conv3x3-ReLU-conv3x3,
// nn.Sequential indices). They are initialised as PyTorch's nn.Conv2d
// default (kaiming_uniform a=sqrt(5), bias U(+-1/sqrt(fan_in))) from rng,
// which afterwards draws MGD's masks (caller-owned and seeded, so runs are
// reproducible). studentCh and teacherCh give every level's channels.
func NewDistiller(reg *layers.Registry, cfg Config, studentCh, teacherCh []int, rng *rand.Rand) (*Distiller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if reg == nil || rng == nil {
		return nil, fmt.Errorf("kd: NewDistiller needs a registry and an rng")
	}
	if len(studentCh) == 0 || len(studentCh) != len(teacherCh) {
		return nil, fmt.Errorf("kd: %d student and %d teacher levels (need the same, at least one)", len(studentCh), len(teacherCh))
	}
	d := &Distiller{Cfg: cfg, StudentCh: append([]int(nil), studentCh...), TeacherCh: append([]int(nil), teacherCh...),
		MaskSource: rng, adapters: map[int]*layers.Conv2d{}, gen0: map[int]*layers.Conv2d{}, gen2: map[int]*layers.Conv2d{},
		ops: map[*G.Node]*levelOp{}}
	d.levels = append([]int(nil), cfg.Levels...)
	if len(d.levels) == 0 {
		for i := range studentCh {
			d.levels = append(d.levels, i)
		}
	}
	seen := map[int]bool{}
	for _, l := range d.levels {
		if l < 0 || l >= len(studentCh) {
			return nil, fmt.Errorf("kd: level %d out of range (the model has %d levels)", l, len(studentCh))
		}
		if seen[l] {
			return nil, fmt.Errorf("kd: level %d listed twice", l)
		}
		seen[l] = true
		cs, ct := studentCh[l], teacherCh[l]
		if cs < 1 || ct < 1 {
			return nil, fmt.Errorf("kd: level %d has %d student and %d teacher channels", l, cs, ct)
		}
		if cfg.Adapter {
			a := layers.NewConv2d(reg, fmt.Sprintf("distill.adapter.%d", l), cs, ct, 1, 1, 0, 1, true)
			initConv(a, rng)
			d.adapters[l] = a
		} else if cs != ct {
			return nil, fmt.Errorf("kd: level %d: student has %d channels, teacher %d: set Adapter to add a 1x1 conv", l, cs, ct)
		}
		if spec, _ := LookupLoss(cfg.Loss); spec.Generator {
			g0 := layers.NewConv2d(reg, fmt.Sprintf("distill.mgd.generator.%d.0", l), ct, ct, 3, 1, 1, 1, true)
			g2 := layers.NewConv2d(reg, fmt.Sprintf("distill.mgd.generator.%d.2", l), ct, ct, 3, 1, 1, 1, true)
			initConv(g0, rng)
			initConv(g2, rng)
			d.gen0[l], d.gen2[l] = g0, g2
		}
	}
	return d, nil
}

// initConv is nn.Conv2d's default initialisation.
func initConv(c *layers.Conv2d, rng *rand.Rand) {
	layers.KaimingUniform(c.Weight, math.Sqrt(5), rng)
	if c.Bias != nil {
		bound := 1 / math.Sqrt(float64(c.In*c.KH*c.KW))
		for i := range c.Bias.Data() {
			c.Bias.Data()[i] = float32((rng.Float64()*2 - 1) * bound)
		}
	}
}

// Levels returns the distilled level indices.
func (d *Distiller) Levels() []int { return append([]int(nil), d.levels...) }

// newLoss returns the per-level kernel for the configuration (one per
// graph, shared by its levels: a graph's ops run one after another).
func (d *Distiller) newLoss() (LevelLoss, error) {
	if s, ok := LookupLoss(d.Cfg.Loss); ok {
		return s.New(d.Cfg)
	}
	return nil, fmt.Errorf("kd: unknown loss %q", d.Cfg.Loss)
}

// Build adds the distillation loss to the student's graph: student[i] is
// level i's feature map node (NCHW, StudentCh[i] channels), teacher the
// host struct the ops read level i's map from (Levels[i], Shapes[i]) on
// every run. It returns the total lambda * sum_levels L(level) and one
// scalar node per distilled level (unweighted L(level), in Levels()
// order): read their float64 values after a run with Value. Shape
// problems found at build time fail the build; a teacher map whose shape
// differs from the (adapted) student's fails the run with an error naming
// the level.
func (d *Distiller) Build(b *layers.Builder, student []*G.Node, teacher *Teacher) (*G.Node, []*G.Node, error) {
	if b == nil || teacher == nil {
		return nil, nil, fmt.Errorf("kd: Build needs a builder and a teacher struct")
	}
	if err := b.Err(); err != nil {
		return nil, nil, err
	}
	if len(student) != len(d.StudentCh) {
		return nil, nil, fmt.Errorf("kd: %d student levels, the distiller was made for %d", len(student), len(d.StudentCh))
	}
	loss, err := d.newLoss()
	if err != nil {
		return nil, nil, err
	}
	var per []*G.Node
	var ops []*levelOp
	for _, l := range d.levels {
		x := student[l]
		if x == nil {
			return nil, nil, fmt.Errorf("kd: student level %d is missing", l)
		}
		s, ok := shape4(x.Shape())
		if !ok {
			return nil, nil, fmt.Errorf("kd: student level %d has shape %v, want NCHW", l, x.Shape())
		}
		if s[1] != d.StudentCh[l] {
			return nil, nil, fmt.Errorf("kd: student level %d has %d channels, the distiller was made for %d", l, s[1], d.StudentCh[l])
		}
		if a := d.adapters[l]; a != nil {
			if x = b.Conv(x, a, nil, nil, false); x == nil {
				return nil, nil, fmt.Errorf("kd: level %d adapter: %w", l, b.Err())
			}
			s[1] = a.Out
		}
		if spec, _ := LookupLoss(d.Cfg.Loss); spec.Generator {
			if x, err = d.mgdGenerator(b, l, x, s); err != nil {
				return nil, nil, err
			}
		}
		name := fmt.Sprintf("kd.%s.%d", d.Cfg.Loss, l)
		op := newLevelOp(name, loss, teacher, l, s, b.NeedsGrad(x))
		n, err := G.ApplyOp(op, x)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		b.MarkNeedsGrad(n, x)
		d.ops[n] = op
		ops = append(ops, op)
		per = append(per, n)
	}
	w := make([]float32, len(per))
	for i := range w {
		w[i] = float32(d.Cfg.Weight)
	}
	total := b.WeightedSum(w, per...)
	if err := b.Err(); err != nil {
		return nil, nil, err
	}
	d.lastGraph = ops
	return total, per, nil
}

// mgdGenerator returns generation(x * mask) for MGD.
func (d *Distiller) mgdGenerator(b *layers.Builder, l int, x *G.Node, s [4]int) (*G.Node, error) {
	mop := &maskOp{opBase: newOpBase(fmt.Sprintf("kd.mgd.mask.%d", l)), shape: s, ratio: d.Cfg.MaskRatio,
		src: &d.MaskSource, needGrad: b.NeedsGrad(x)}
	m, err := G.ApplyOp(mop, x)
	if err != nil {
		return nil, fmt.Errorf("kd.mgd.mask.%d: %w", l, err)
	}
	b.MarkNeedsGrad(m, x)
	y := b.Conv(m, d.gen0[l], nil, nil, true)
	y = b.Conv(y, d.gen2[l], nil, nil, false)
	if y == nil {
		return nil, fmt.Errorf("kd: level %d generator: %w", l, b.Err())
	}
	return y, nil
}

// Value returns the float64 value of the last run of a per-level node
// returned by Build, or of any loss node package layers can read (the
// total: a float32-rounded sum of the levels).
func (d *Distiller) Value(n *G.Node) (float64, bool) {
	if op, ok := d.ops[n]; ok {
		return op.last, true
	}
	return layers.LossValue(n)
}

// LastLevels returns the float64 per-level values of the last run of the
// most recently built graph, in Levels() order, and their weighted total.
func (d *Distiller) LastLevels() ([]float64, float64) {
	out := make([]float64, len(d.lastGraph))
	var s float64
	for i, op := range d.lastGraph {
		out[i] = op.last
		s += op.last
	}
	return out, d.Cfg.Weight * s
}

// String describes the configuration.
func (d *Distiller) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "kd %s weight %g levels %v", d.Cfg.Loss, d.Cfg.Weight, d.levels)
	if d.Cfg.Adapter {
		sb.WriteString(" adapter")
	}
	if d.Cfg.Loss == "ssim" {
		s := d.Cfg.ssim()
		fmt.Fprintf(&sb, " window %d sigma %g padding %s normalize %s terms %s", s.Window, s.Sigma, s.Padding, s.Normalize, s.Terms)
	}
	return sb.String()
}
