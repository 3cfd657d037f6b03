package train

import (
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/kd"
	"github.com/skd-go/skd/layers"
	"github.com/skd-go/skd/model"
	"github.com/skd-go/skd/model/weights"
)

// Distill is the feature-distillation extension: a frozen teacher (its
// backbone + FPN only, forward only, in a program of its own with no
// gradient nodes) runs on every training batch, and the configured KD loss
// between its FPN maps and the student's is added to the student's
// detection losses (loss_kd = lambda * sum over levels).
type Distill struct {
	HookBase
	TeacherCfg *config.File
	Teacher    *model.FasterRCNN
	Distiller  *kd.Distiller

	data  kd.Teacher
	progs map[[3]int]*teacherProg
	clock uint64
	pcg   *randv2.PCG
}

type teacherProg struct {
	g    *G.ExprGraph
	m    *layers.Machine
	x    *tensor.Dense
	kept []*layers.Kept
	used uint64
}

// NewDistill loads the teacher named by cfg.Teacher (its config and
// weights: a weights file, a checkpoint directory or a work directory).
func NewDistill(cfg *config.File) (*Distill, error) {
	if cfg.Teacher.Config == "" {
		return nil, fmt.Errorf("distill: teacher.config is not set")
	}
	tcfg, _, err := config.LoadFile(cfg.Teacher.Config, nil)
	if err != nil {
		return nil, fmt.Errorf("teacher config: %w", err)
	}
	if tcfg.Input.Format != cfg.Input.Format {
		return nil, fmt.Errorf("teacher input.format %q differs from the student's %q: both see the same batch", tcfg.Input.Format, cfg.Input.Format)
	}
	t, err := model.New(tcfg.Model)
	if err != nil {
		return nil, fmt.Errorf("teacher model: %w", err)
	}
	w, err := ResolveWeights(cfg.Teacher.Weights)
	if err != nil {
		return nil, fmt.Errorf("teacher weights: %w", err)
	}
	if _, err := model.LoadWeights(t.Reg, w, model.LoadOptions{}); err != nil {
		return nil, fmt.Errorf("teacher weights: %w", err)
	}
	return NewDistillWith(tcfg, t), nil
}

// NewDistillWith wraps an already built teacher (its parameters are
// frozen here).
func NewDistillWith(tcfg *config.File, teacher *model.FasterRCNN) *Distill {
	for _, p := range teacher.Reg.Params() {
		p.Frozen = true
	}
	return &Distill{TeacherCfg: tcfg, Teacher: teacher, progs: map[[3]int]*teacherProg{}}
}

// ResolveWeights accepts a weights file, a checkpoint directory (its
// model.safetensors) or a work directory (its last checkpoint); a
// checkpoint's file is checked against the SHA-256 in its state.json.
func ResolveWeights(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("no weights given")
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return p, nil
	}
	if _, err := os.Stat(filepath.Join(p, ModelFile)); err == nil {
		return filepath.Join(p, ModelFile), VerifyWeightsFile(filepath.Join(p, ModelFile))
	}
	dir, err := ResolveCheckpoint(p)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, ModelFile), VerifyWeightsFile(filepath.Join(dir, ModelFile))
}

// Name implements Hook.
func (d *Distill) Name() string { return "distill" }

// Register adds the distiller's trainable parameters (adapters, MGD
// generators) to the student and hooks the KD loss into its training
// programs.
func (d *Distill) Register(t *Trainer) error {
	if err := d.Attach(t.Cfg, t.Det); err != nil {
		return err
	}
	fmt.Fprintf(t.Out, "distillation: %s\n", d.Distiller)
	return nil
}

// BeforeTrain evaluates the teacher on the val split once, at the start
// of a fresh run, and records its metrics at iteration 0.
func (d *Distill) BeforeTrain(t *Trainer) error {
	if t.ValAnn == "" || t.Resumed || t.Cfg.Distill.SkipTeacherEval {
		return nil
	}
	res, err := t.evalDataset(d.Teacher, d.TeacherCfg) // sharded over the ranks (ddp.go)
	if err != nil {
		return fmt.Errorf("teacher evaluation: %w", err)
	}
	fmt.Fprintf(t.Out, "teacher: AP %.4f  AP50 %.4f  AP75 %.4f  APs %.4f  APm %.4f  APl %.4f\n", res.Stats[0], res.Stats[1], res.Stats[2], res.Stats[3], res.Stats[4], res.Stats[5])
	names := []string{"AP", "AP50", "AP75", "APs", "APm", "APl"}
	rec := map[string]any{"iter": 0}
	sc := map[string]float64{}
	for i, n := range names {
		rec["teacher_"+n] = res.Stats[i]
		sc["teacher/"+n] = res.Stats[i]
	}
	t.Events.Write(0, rec, sc)
	return nil
}

// Attach registers the distiller's parameters in the student det and
// hooks the KD loss into its training programs (cfg: the student's
// configuration, for its distill section, seed and channels).
func (d *Distill) Attach(cfg *config.File, det *model.FasterRCNN) error {
	if d.progs == nil {
		d.progs = map[[3]int]*teacherProg{}
	}
	kc, err := glue.KD(cfg)
	if err != nil {
		return err
	}
	sCh := make([]int, 5)
	tCh := make([]int, 5)
	for i := range sCh {
		sCh[i], tCh[i] = cfg.Model.FPNChannels, d.TeacherCfg.Model.FPNChannels
	}
	d.pcg = randv2.NewPCG(uint64(cfg.Train.Seed), 0xd157)
	dist, err := kd.NewDistiller(det.Reg, kc, sCh, tCh, rand.New(rand.NewSource(cfg.Train.Seed+17)))
	if err != nil {
		return err
	}
	dist.MaskSource = randv2.New(d.pcg)
	d.Distiller = dist
	det.Extra = func(b *layers.Builder, p *model.Program) (map[string]*G.Node, error) {
		loss, _, err := dist.Build(b, p.Feats, &d.data)
		if err != nil {
			return nil, err
		}
		return map[string]*G.Node{"loss_kd": loss}, nil
	}
	return nil
}

// BeforeStep runs the teacher's backbone + FPN on the step's batch.
func (d *Distill) BeforeStep(t *Trainer) error { return d.TeacherForward(t.Step.Input) }

// TeacherForward runs the teacher's backbone + FPN on a batch and makes
// its maps the KD loss's targets.
func (d *Distill) TeacherForward(in *model.Input) error {
	key := [3]int{in.N, in.H, in.W}
	tp := d.progs[key]
	if tp == nil {
		d.evictTeacherProgram()
		var err error
		if tp, err = d.build(in.N, in.H, in.W); err != nil {
			return err
		}
		d.progs[key] = tp
	}
	d.clock++
	tp.used = d.clock
	copy(tp.x.Data().([]float32), in.Images)
	if err := tp.m.Run(); err != nil {
		return fmt.Errorf("teacher forward: %w", err)
	}
	d.data.Levels = d.data.Levels[:0]
	d.data.Shapes = d.data.Shapes[:0]
	for _, k := range tp.kept {
		s := k.Shape()
		d.data.Levels = append(d.data.Levels, k.Data())
		d.data.Shapes = append(d.data.Shapes, [4]int{s[0], s[1], s[2], s[3]})
	}
	return nil
}

// evictTeacherProgram closes the least recently used teacher program when
// the cache is full (the teacher model's MaxPrograms).
func (d *Distill) evictTeacherProgram() {
	for max := d.Teacher.MaxPrograms; max > 0 && len(d.progs) >= max; {
		var oldK [3]int
		var old *teacherProg
		for k, tp := range d.progs {
			if old == nil || tp.used < old.used {
				oldK, old = k, tp
			}
		}
		old.m.Close()
		delete(d.progs, oldK)
	}
}

// build compiles the teacher's forward-only backbone + FPN for a shape:
// no Grad call, so no gradient node or memory exists for the teacher. It
// computes in the teacher model's arena; the kept FPN maps stay there
// until the teacher's next run.
func (d *Distill) build(n, h, w int) (*teacherProg, error) {
	b := layers.NewBuilder(d.Teacher.Reg)
	if d.Teacher.Arena != nil {
		b.UseArena(d.Teacher.Arena)
	}
	x := b.Input("teacher_images", n, 3, h, w)
	xv := tensor.New(tensor.WithShape(n, 3, h, w), tensor.Of(tensor.Float32))
	if err := G.Let(x, xv); err != nil {
		return nil, err
	}
	c := d.Teacher.Body.Forward(b, x)
	feats := d.Teacher.FPN.Forward(b, c[:])
	tp := &teacherProg{x: xv, g: b.G}
	for _, f := range feats {
		tp.kept = append(tp.kept, b.Keep(f))
	}
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("teacher graph: %w", err)
	}
	m, err := b.Compile()
	if err != nil {
		return nil, err
	}
	tp.m = m
	return tp, nil
}

// State implements Hook (MGD's mask stream).
func (d *Distill) State() ([]byte, error) { return d.pcg.MarshalBinary() }

// LoadState implements Hook.
func (d *Distill) LoadState(b []byte) error { return d.pcg.UnmarshalBinary(b) }

// ExportStudent writes the student's weights without the distiller's
// parameters (adapters, generators): a plain detector checkpoint that
// kddetect and kdeval load with no teacher.
func ExportStudent(reg *layers.Registry, path string) error {
	sd := weights.StateDict{}
	var names []string
	for _, p := range reg.Params() {
		if strings.HasPrefix(p.Name, "distill.") {
			continue
		}
		sd[p.Name] = &weights.Tensor{Shape: append([]int(nil), p.Shape()...), Data: p.Data()}
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return weights.SaveSafetensors(path, sd, map[string]string{"content": "student detector without distillation parameters"})
}

// AfterTrain exports the student-only weights of a finished run (next
// to its final checkpoint, which the checkpoint hook writes after).
func (d *Distill) AfterTrain(t *Trainer) error {
	if !t.Finished() {
		return nil
	}
	p := filepath.Join(t.WorkDir, "student_final.safetensors")
	if err := t.RootDo(func() error { return ExportStudent(t.Det.Reg, p) }); err != nil {
		return fmt.Errorf("exporting the student: %w", err)
	}
	fmt.Fprintf(t.Out, "student weights (no distillation parameters): %s\n", p)
	return nil
}

// TeacherGraphs returns the teacher's compiled graphs (for inspection).
func (d *Distill) TeacherGraphs() []*G.ExprGraph {
	var gs []*G.ExprGraph
	for _, tp := range d.progs {
		gs = append(gs, tp.g)
	}
	return gs
}
