package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/data/synth"
	"github.com/skd-go/skd/infer"
	"github.com/skd-go/skd/model"
	"github.com/skd-go/skd/plots"
	"github.com/skd-go/skd/tensorboard"
)

// ErrNonFinite marks a stop on a NaN or infinite loss.
var ErrNonFinite = errors.New("non-finite loss")

// Options configure a training run.
type Options struct {
	Config   *config.File
	Resolved []byte // the resolved YAML, saved in the work dir
	// Resume is "" (fresh run), "auto" (the work dir's last checkpoint) or
	// a checkpoint / work directory.
	Resume string
	// Weights initialises the model (overrides train.init_weights).
	Weights string
	// Out receives the progress lines (nil: os.Stdout).
	Out io.Writer
	// Extensions add to training (distillation).
	Extensions []Extension
	// Log receives diagnostics (nil: slog.Default()).
	Log *slog.Logger
}

// Extension hooks into a run: Setup after the detector exists (before any
// graph is built), BeforeStep on every training batch before the step,
// and its random state is saved and restored with checkpoints.
type Extension interface {
	Name() string
	Setup(t *Trainer) error
	BeforeStep(t *Trainer, in *model.Input) error
	RNGState() ([]byte, error)
	RestoreRNG([]byte) error
}

// Trainer owns one run.
type Trainer struct {
	Cfg     *config.File
	Det     *model.FasterRCNN
	Opt     *SGD
	Sched   Schedule
	State   State
	WorkDir string
	TrainDS *data.Dataset
	ValAnn  string
	ValImgs string
	Log     *slog.Logger

	opts    Options
	out     io.Writer
	loader  *data.Loader
	metrics *os.File
	tb      *tensorboard.Writer
	hash    string
	catIDs  bool
}

// New prepares a run: datasets (generating the synthetic set when
// configured), the detector, its initial weights or the resumed
// checkpoint, the work dir.
func New(opts Options) (*Trainer, error) {
	cfg := opts.Config
	t := &Trainer{Cfg: cfg, opts: opts, out: opts.Out, Log: opts.Log, WorkDir: cfg.Train.WorkDir}
	if t.out == nil {
		t.out = os.Stdout
	}
	if t.Log == nil {
		t.Log = slog.Default()
	}
	if err := os.MkdirAll(t.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("work dir %s: %w", t.WorkDir, err)
	}
	probe := filepath.Join(t.WorkDir, ".write-test")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		return nil, fmt.Errorf("work dir %s is not writable: %w", t.WorkDir, err)
	}
	os.Remove(probe)
	t.hash = config.Hash(opts.Resolved)
	if err := config.Save(filepath.Join(t.WorkDir, "config.yaml"), opts.Resolved); err != nil {
		return nil, err
	}
	trainAnn, trainImgs, valAnn, valImgs, err := DatasetPaths(cfg)
	if err != nil {
		return nil, err
	}
	t.ValAnn, t.ValImgs = valAnn, valImgs
	if t.TrainDS, err = data.LoadCOCO(trainAnn, trainImgs, data.COCOOptions{FilterEmpty: true, Logger: t.Log}); err != nil {
		return nil, err
	}
	if len(t.TrainDS.Images) == 0 {
		return nil, fmt.Errorf("training set %s has no image with a usable box", trainAnn)
	}
	t.catIDs = cfg.Data.Labels == "category_id"
	need := t.TrainDS.NumClasses() + 1
	if t.catIDs {
		need = int(t.TrainDS.LabelToCatID[len(t.TrainDS.LabelToCatID)-1]) + 1
	}
	if cfg.Model.RoI.NumClasses < need {
		return nil, fmt.Errorf("model.roi_heads.num_classes is %d but %s needs %d (background + labels)", cfg.Model.RoI.NumClasses, trainAnn, need)
	}
	if t.Det, err = model.New(cfg.Model); err != nil {
		return nil, err
	}
	t.Det.Init(cfg.Train.Seed)
	t.Det.Seed(uint64(cfg.Train.Seed))
	t.Opt = NewSGD(cfg.Solver.Momentum, cfg.Solver.WeightDecay, cfg.Solver.NoDecayNormBias)
	t.Sched = Schedule{BaseLR: cfg.Solver.BaseLR, WarmupIters: cfg.Solver.WarmupIters, WarmupFactor: cfg.Solver.WarmupFactor, Steps: cfg.Solver.Steps, Gamma: cfg.Solver.Gamma}
	t.State = State{ConfigHash: t.hash, Seed: cfg.Train.Seed, BestAP: -1, BestIter: -1}
	for _, e := range opts.Extensions {
		if err := e.Setup(t); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
	}
	CleanTemp(t.WorkDir)
	if opts.Resume != "" {
		if err := t.resume(opts.Resume); err != nil {
			return nil, err
		}
	} else {
		w := opts.Weights
		if w == "" {
			w = cfg.Train.InitWeights
		}
		if w != "" {
			lo := model.LoadOptions{AllowMissing: []string{"*"}}
			lo.Prefix = cfg.Train.InitPrefix
			lo.Ignore = []string{"fc.*"}
			rep, err := model.LoadWeights(t.Det.Reg, w, lo)
			if err != nil {
				return nil, err
			}
			t.Log.Info("initial weights", "file", w, "matched", len(rep.Matched), "missing", len(rep.Missing), "unexpected", len(rep.Unexpected))
		}
	}
	return t, nil
}

// DatasetPaths returns the train and val splits, generating the
// synthetic set first when data.synth.dir is set.
func DatasetPaths(cfg *config.File) (trainAnn, trainImgs, valAnn, valImgs string, err error) {
	d := cfg.Data
	trainAnn, trainImgs, valAnn, valImgs = d.Train.Ann, d.Train.Images, d.Val.Ann, d.Val.Images
	if s := d.Synth; s.Dir != "" {
		opts := synth.Options{Train: s.Train, Val: s.Val, Seed: s.Seed, Size: s.Size, Sizes: s.Sizes, Variant: s.Variant, Holdout: s.Holdout}
		if err = synth.Ensure(s.Dir, opts); err != nil {
			return "", "", "", "", fmt.Errorf("synthetic dataset %s: %w", s.Dir, err)
		}
		if trainAnn == "" {
			trainAnn, trainImgs = synth.TrainAnnotations(s.Dir), synth.TrainImages(s.Dir)
		}
		if valAnn == "" {
			valAnn, valImgs = synth.ValAnnotations(s.Dir), synth.ValImages(s.Dir)
		}
	}
	if trainAnn == "" {
		return "", "", "", "", fmt.Errorf("data.train.ann is not set (and no data.synth.dir)")
	}
	for _, p := range []string{trainAnn, trainImgs} {
		if _, err := os.Stat(p); err != nil {
			return "", "", "", "", fmt.Errorf("dataset path: %w", err)
		}
	}
	return trainAnn, trainImgs, valAnn, valImgs, nil
}

func (t *Trainer) resume(which string) error {
	p := which
	if which == "auto" {
		p = t.WorkDir
	}
	dir, err := ResolveCheckpoint(p)
	if err != nil {
		return err
	}
	st, err := LoadCheckpoint(dir, t.Det.Reg, t.Opt)
	if err != nil {
		return err
	}
	if st.ConfigHash != t.hash {
		t.Log.Warn("resuming with a different configuration", "checkpoint", st.ConfigHash, "now", t.hash)
	}
	if err := t.Det.PCG.UnmarshalBinary(st.SamplerRNG); err != nil {
		return fmt.Errorf("resume %s: sampler RNG: %w", dir, err)
	}
	for _, e := range t.opts.Extensions {
		if b, ok := st.ExtraRNG[e.Name()]; ok {
			if err := e.RestoreRNG(b); err != nil {
				return fmt.Errorf("resume %s: %s: %w", dir, e.Name(), err)
			}
		}
	}
	t.State = *st
	t.State.ConfigHash = t.hash
	t.Log.Info("resumed", "checkpoint", dir, "iter", st.Iter)
	return t.truncateMetrics(st.Iter)
}

// truncateMetrics drops metrics.jsonl lines logged after the checkpoint,
// so a resumed run's log reads as an uninterrupted one.
func (t *Trainer) truncateMetrics(iter int64) error {
	p := filepath.Join(t.WorkDir, "metrics.jsonl")
	raw, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []byte
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m struct {
			Iter *int64 `json:"iter"`
		}
		line := sc.Bytes()
		if json.Unmarshal(line, &m) != nil || m.Iter == nil || *m.Iter > iter {
			continue
		}
		keep = append(append(keep, line...), '\n')
	}
	return writeAtomic(p, keep)
}

func (t *Trainer) toInput(b *data.Batch) *model.Input {
	in := infer.ToTrainInput(b)
	if t.catIDs {
		for _, ls := range in.GTLabels {
			for j, l := range ls {
				ls[j] = int(t.TrainDS.LabelToCatID[l])
			}
		}
	}
	return in
}

// Run trains from State.Iter to solver.max_iter.
func (t *Trainer) Run() (err error) {
	cfg := t.Cfg
	lc := data.LoaderConfig{BatchSize: cfg.Solver.IMSPerBatch, Workers: cfg.Data.Workers, Seed: cfg.Train.Seed, Shuffle: true, Train: true,
		AspectGrouping: cfg.Data.AspectGrouping, StartIter: t.State.Iter, Transform: infer.TransformConfig(cfg, true), Logger: t.Log}
	if t.loader, err = data.NewLoader(t.TrainDS, lc); err != nil {
		return err
	}
	defer t.loader.Close()
	if t.metrics, err = os.OpenFile(filepath.Join(t.WorkDir, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		return err
	}
	defer t.metrics.Close()
	if t.tb, err = tensorboard.NewWriter(t.WorkDir); err != nil {
		return err
	}
	defer t.tb.Close()
	defer t.plot()
	for _, e := range t.opts.Extensions {
		if s, ok := e.(interface{ Start(*Trainer) }); ok {
			s.Start(t)
		}
	}

	maxIter := int64(cfg.Solver.MaxIter)
	start := time.Now()
	startIter := t.State.Iter
	var dataTime, stepTime float64
	for it := t.State.Iter; it < maxIter; it++ {
		t0 := time.Now()
		b, err := t.loader.Next()
		if err != nil {
			return fmt.Errorf("iteration %d: data: %w", it, err)
		}
		in := t.toInput(b)
		t1 := time.Now()
		for _, e := range t.opts.Extensions {
			if err := e.BeforeStep(t, in); err != nil {
				return fmt.Errorf("iteration %d: %s: %w", it, e.Name(), err)
			}
		}
		losses, prog, err := t.Det.TrainStep(in)
		if err != nil {
			return fmt.Errorf("iteration %d: %w", it, err)
		}
		if err := losses.CheckFinite(); err != nil {
			last, _ := ResolveCheckpoint(t.WorkDir)
			if last == "" {
				last = "none"
			}
			return fmt.Errorf("%w at iteration %d: %v; stopped, no update applied; last good checkpoint: %s", ErrNonFinite, it+1, err, last)
		}
		lr := t.Sched.LR(int(it))
		grads := make([][]float32, len(prog.Params))
		for i := range prog.Params {
			grads[i] = prog.Gradient(i)
		}
		gnorm := ClipGradNorm(grads, cfg.Solver.ClipGradNorm)
		if math.IsNaN(gnorm) || math.IsInf(gnorm, 0) {
			return fmt.Errorf("%w at iteration %d: gradient norm is %v; stopped, no update applied", ErrNonFinite, it+1, gnorm)
		}
		if err := t.Opt.Step(prog.Params, grads, lr); err != nil {
			return err
		}
		t2 := time.Now()
		dataTime += t1.Sub(t0).Seconds()
		stepTime += t2.Sub(t0).Seconds()
		t.State.Iter = it + 1
		t.State.LoaderIter = it + 1
		t.State.Epoch = b.Epoch
		done := it + 1
		if done%int64(max(cfg.Train.LogPeriod, 1)) == 0 || done == maxIter || it == startIter {
			n := float64(done - startIter)
			t.logStep(done, maxIter, losses, lr, gnorm, stepTime/n, dataTime/n, time.Since(start))
		}
		evalNow := cfg.Train.EvalPeriod > 0 && done%int64(cfg.Train.EvalPeriod) == 0 && done != maxIter
		if evalNow {
			if err := t.evaluate(done); err != nil {
				return err
			}
		}
		if cfg.Train.CheckpointPeriod > 0 && done%int64(cfg.Train.CheckpointPeriod) == 0 && done != maxIter {
			if err := t.save(fmt.Sprintf("iter_%07d", done)); err != nil {
				return err
			}
		}
	}
	if t.State.Iter == maxIter {
		if err := t.evaluate(maxIter); err != nil {
			return err
		}
		if err := t.save("model_final"); err != nil {
			return err
		}
		for _, e := range t.opts.Extensions {
			if f, ok := e.(interface{ Finish(*Trainer) error }); ok {
				if err := f.Finish(t); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (t *Trainer) rngStates() error {
	b, err := t.Det.PCG.MarshalBinary()
	if err != nil {
		return err
	}
	t.State.SamplerRNG = b
	t.State.ExtraRNG = map[string][]byte{}
	for _, e := range t.opts.Extensions {
		s, err := e.RNGState()
		if err != nil {
			return err
		}
		if s != nil {
			t.State.ExtraRNG[e.Name()] = s
		}
	}
	return nil
}

func (t *Trainer) save(name string) error {
	if err := t.rngStates(); err != nil {
		return err
	}
	dir, err := SaveCheckpoint(t.WorkDir, name, t.Det.Reg, t.Opt, &t.State, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(t.out, "saved checkpoint %s\n", dir)
	return nil
}

func (t *Trainer) logStep(done, maxIter int64, l model.Losses, lr, gnorm, sPerIt, dataPerIt float64, elapsed time.Duration) {
	keys := make([]string, 0, len(l))
	for k := range l {
		if k != "total" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.4f", strings.TrimPrefix(k, "loss_"), l[k]))
	}
	eta := time.Duration(float64(maxIter-done)*sPerIt) * time.Second
	mem := rssMiB()
	fmt.Fprintf(t.out, "iter %d/%d  loss %.4f (%s)  lr %.5f  %.3f s/it  data %.3f s  mem %.0f MiB  eta %s\n",
		done, maxIter, l["total"], strings.Join(parts, ", "), lr, sPerIt, dataPerIt, mem, eta.Round(time.Second))
	rec := map[string]any{"iter": done, "lr": lr, "time": sPerIt, "data_time": dataPerIt, "memory": mem, "grad_norm": gnorm, "elapsed": elapsed.Seconds()}
	scal := map[string]float64{"lr": lr, "time": sPerIt, "grad_norm": gnorm}
	for k, v := range l {
		rec[k] = v
		scal["train/"+k] = v
	}
	t.writeMetrics(rec)
	t.tb.Scalars(done, scal)
	t.tb.Flush()
}

func (t *Trainer) writeMetrics(rec map[string]any) {
	raw, err := json.Marshal(rec)
	if err != nil {
		t.Log.Warn("metrics", "err", err)
		return
	}
	t.metrics.Write(append(raw, '\n'))
	t.metrics.Sync()
}

// evaluate runs COCO evaluation on the val split, logs it, and saves the
// best checkpoint when AP improves.
func (t *Trainer) evaluate(done int64) error {
	if t.ValAnn == "" {
		return nil
	}
	t0 := time.Now()
	res, _, err := infer.EvaluateDataset(t.Det, t.Cfg, t.ValAnn, t.ValImgs, t.Cfg.Train.EvalMaxImages)
	if err != nil {
		return fmt.Errorf("evaluation at iteration %d: %w", done, err)
	}
	names := []string{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}
	rec := map[string]any{"iter": done, "eval_time": time.Since(t0).Seconds()}
	scal := map[string]float64{}
	for i, n := range names {
		rec[n] = res.Stats[i]
		scal["val/"+n] = res.Stats[i]
	}
	t.writeMetrics(rec)
	t.tb.Scalars(done, scal)
	t.tb.Flush()
	fmt.Fprintf(t.out, "eval iter %d: AP %.4f  AP50 %.4f  AP75 %.4f  APs %.4f  APm %.4f  APl %.4f  (%.1f s)\n",
		done, res.Stats[0], res.Stats[1], res.Stats[2], res.Stats[3], res.Stats[4], res.Stats[5], time.Since(t0).Seconds())
	if ap := res.Stats[0]; ap > t.State.BestAP {
		t.State.BestAP, t.State.BestIter = ap, done
		if err := t.rngStates(); err != nil {
			return err
		}
		if _, err := SaveCheckpoint(t.WorkDir, "best", t.Det.Reg, t.Opt, &t.State, false); err != nil {
			return err
		}
	}
	return nil
}

// plot writes loss and AP curves from metrics.jsonl (also on demand:
// kdtrain plot).
func (t *Trainer) plot() {
	if err := PlotWorkDir(t.WorkDir); err != nil {
		t.Log.Warn("plots", "err", err)
	}
}

// PlotWorkDir writes loss_curves.png and ap_curves.png from a work dir's
// metrics.jsonl.
func PlotWorkDir(dir string) error {
	series, err := plots.ReadMetricsJSONL(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return err
	}
	loss, ap := map[string][]plots.Point{}, map[string][]plots.Point{}
	for k, v := range series {
		switch {
		case strings.HasPrefix(k, "loss") || k == "total":
			loss[k] = v
		case k == "AP" || k == "AP50" || k == "AP75":
			ap[k] = v
		}
	}
	if len(loss) > 0 {
		if err := plots.LossCurves(filepath.Join(dir, "loss_curves.png"), loss, "training losses"); err != nil {
			return err
		}
	}
	if len(ap) > 0 {
		if err := plots.MetricCurves(filepath.Join(dir, "ap_curves.png"), ap, "validation AP"); err != nil {
			return err
		}
	}
	return nil
}

func rssMiB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%f", &kb)
				return kb / 1024
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.Sys) / (1 << 20)
}
