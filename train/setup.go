package train

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/model"
)

// setup checks a data-parallel world (ddp.go), opens the work dir
// (workdir.go, rank 0 only: lock, refusal to overwrite a run, recovery of
// interrupted checkpoint writes; the resolved configuration is saved by
// New once everything is set up), loads the training set and names the
// val split (glue), checks both (inputs.go), and builds the randomly
// initialised detector, the solver and the schedule. On error the work
// dir's lock is released, and a work dir setup created is removed.
func setup(opts Options) (_ *Trainer, err error) {
	cfg := opts.Config
	t := &Trainer{Cfg: cfg, Out: opts.Out, Log: opts.Log, WorkDir: cfg.Train.WorkDir, opts: opts}
	if t.Out == nil {
		t.Out = os.Stdout
	}
	if t.Log == nil {
		t.Log = slog.Default()
	}
	t.hash = config.Hash(opts.Resolved)
	// data-parallel checks (same configuration, divisible batch) before
	// anything is written (ddp.go)
	if t.DDP, err = newDDP(opts.World, cfg, t.hash); err != nil {
		return nil, err
	}
	if w := t.DDP.W; w.Size() > 1 {
		t.Log = t.Log.With("rank", w.Rank())
		if !w.IsRoot() {
			t.Out = io.Discard
		}
	}
	// rank 0 alone opens and locks the work dir; its error is every rank's
	if err := t.DDP.agree(t.DDP.rootOnly(t.openWorkDir)); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.abandonWorkDir()
		}
	}()
	// rank 0 first: it generates a missing synthetic set
	if err := t.DDP.agree(t.DDP.rootFirst(t.loadData)); err != nil {
		return nil, err
	}
	if t.Det, err = model.New(cfg.Model); err != nil {
		return nil, t.DDP.same(err)
	}
	t.Det.Init(cfg.Train.Seed)
	t.Det.Seed(uint64(cfg.Train.Seed))
	t.Opt = NewSGD(cfg.Solver.Momentum, cfg.Solver.WeightDecay, cfg.Solver.NoDecayNormBias)
	t.Sched = Schedule{BaseLR: cfg.Solver.BaseLR, WarmupIters: cfg.Solver.WarmupIters, WarmupFactor: cfg.Solver.WarmupFactor, Steps: cfg.Solver.Steps, Gamma: cfg.Solver.Gamma}
	t.State = State{ConfigHash: t.hash, Seed: cfg.Train.Seed, BestAP: -1, BestIter: -1}
	return t, nil
}

// loadData loads the training split and the label map and names the val
// split (glue's rule, shared with kdeval).
func (t *Trainer) loadData() error {
	tr, err := glue.TrainSplit(t.Cfg, nil)
	if err != nil {
		return err
	}
	val, _, err := glue.ValSplit(t.Cfg, nil)
	if err != nil {
		return err
	}
	t.ValAnn, t.ValImgs = val.Ann, val.Images
	if t.TrainDS, err = data.LoadCOCO(tr.Ann, tr.Images, data.COCOOptions{FilterEmpty: true, Logger: t.Log}); err != nil {
		return err
	}
	if len(t.TrainDS.Images) == 0 {
		return fmt.Errorf("training set %s has no image with a usable box", tr.Ann)
	}
	if err := t.checkInputs(tr.Ann, tr.Images); err != nil {
		return err
	}
	t.labels, err = glue.ModelLabels(t.Cfg, t.TrainDS, tr.Ann)
	return err
}

// start resumes (opts.Resume) or loads the initial weights, then saves
// the resolved configuration as WORK_DIR/config.yaml: only now, so that a
// failed --resume leaves the previous one in place.
func (t *Trainer) start(opts Options) error {
	var err error
	if opts.Resume != "" {
		err = t.resume(opts.Resume)
	} else {
		err = t.loadInitialWeights(opts.Weights)
	}
	if err != nil {
		return err
	}
	return t.writeConfig()
}

// loadInitialWeights loads w (else train.init_weights, if set) into the
// detector; parameters the file lacks keep their initialisation.
func (t *Trainer) loadInitialWeights(w string) error {
	if w == "" {
		w = t.Cfg.Train.InitWeights
	}
	if w == "" {
		return nil
	}
	lo := model.LoadOptions{AllowMissing: []string{"*"}}
	lo.Prefix = t.Cfg.Train.InitPrefix
	lo.Ignore = []string{"fc.*"}
	rep, err := model.LoadWeights(t.Det.Reg, w, lo)
	if err != nil {
		return err
	}
	t.Log.Info("initial weights", "file", w, "matched", len(rep.Matched), "missing", len(rep.Missing), "unexpected", len(rep.Unexpected))
	return nil
}

// resume loads a checkpoint (which: "auto" for the work dir's last one)
// into the detector, the solver, the sampler, the hooks and State.
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
	if err := t.loadHookStates(st.ExtraRNG); err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	t.State = *st
	t.State.ConfigHash = t.hash
	t.Resumed = true
	if err := t.resumedFrom(dir); err != nil { // workdir.go
		return err
	}
	t.Log.Info("resumed", "checkpoint", dir, "iter", st.Iter)
	t.noteWorldSize(st)
	return truncateMetrics(filepath.Join(t.WorkDir, "metrics.jsonl"), st.Iter)
}
