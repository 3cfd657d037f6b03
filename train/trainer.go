package train

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/dist"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/model"
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
	// Extensions are hooks added to the defaults (distillation); see
	// DefaultHooks for where they run.
	Extensions []Extension
	// Log receives diagnostics (nil: slog.Default()).
	Log *slog.Logger
	// Force starts a fresh run in a work dir that holds one, moving that
	// run aside to WORK_DIR.old-TIMESTAMP (see openWorkDir).
	Force bool
	// World is the data-parallel world (nil: one process); see ddp.go.
	World *dist.World
}

// Trainer owns one run: the loop (Run) and the surface its hooks use.
type Trainer struct {
	Cfg     *config.File
	Det     *model.FasterRCNN
	Opt     *SGD
	Sched   Schedule
	State   State
	WorkDir string
	TrainDS *data.Dataset
	// ValAnn and ValImgs are the val split (glue.ValSplit); empty: none.
	ValAnn  string
	ValImgs string
	Log     *slog.Logger
	// Out receives the progress lines.
	Out io.Writer
	// Events records metrics (metrics.jsonl, TensorBoard, opened on the
	// first write); a hook may set its own in Register or replace it in
	// BeforeTrain before anything is written (a distributed run's ranks
	// other than 0).
	Events EventWriter
	// Step is the iteration being run.
	Step Step
	// Eval is the last evaluation of the val split (Evaluation).
	Eval EvalResult
	// Resumed tells whether the run continues from a checkpoint.
	Resumed bool
	// DDP is the data-parallel state (a one-process world by default;
	// ddp.go, ddp_hook.go).
	DDP *DDP

	hooks   []Hook
	loader  *data.Loader
	labels  []int64 // dataset label -> model label (nil: the same)
	hash    string
	err     error // the run's first error (AfterTrain hooks see it)
	loopErr error // the iterations' error (Finished)
	started time.Time
	opts    Options
	wd      *workDir // lock and last-good bookkeeping (workdir.go)
}

// EvalResult is an evaluation after Iter iterations: the 12 COCO stats
// (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl).
type EvalResult struct {
	Iter  int64
	Stats [12]float64
}

// Step is what one iteration produced so far, for the hooks.
type Step struct {
	// Iter is the 0-based index of the iteration.
	Iter  int64
	Batch *data.Batch
	Input *model.Input
	// LR is the learning rate of this iteration (set by LRSchedule).
	LR       float64
	Losses   model.Losses
	Program  *model.Program
	Grads    [][]float32
	GradNorm float64
	// Start is when the iteration began; DataTime the seconds spent
	// loading its batch, Time the seconds up to the end of the update.
	Start          time.Time
	DataTime, Time float64
	// CommTime is the seconds the communication goroutine spent in the
	// step's gradient allreduces, CommExposed the part of it after the
	// backward pass had ended (the rest was hidden behind the backward
	// pass), CommWait the seconds DataParallel took after the backward
	// pass (waiting for the allreduces, unpacking the means, the losses'
	// allreduce). All 0 with one process.
	CommTime, CommExposed, CommWait float64
}

// New prepares a run (datasets, detector, work dir, setup.go), registers
// DataParallel and DefaultHooks with opts.Extensions, and loads the
// resumed checkpoint or the initial weights. In a data-parallel run
// (opts.World) rank 0 alone opens the work dir, loads the weights or the
// checkpoint and writes the configuration, then broadcasts the
// parameters, the solver's buffers and the training state; every rank
// returns the same error (ddp.go).
func New(opts Options) (*Trainer, error) {
	t, err := setup(opts)
	if err != nil {
		return nil, err
	}
	hooks := append([]Hook{&DataParallel{}}, DefaultHooks(opts.Extensions...)...)
	if err := t.DDP.agree(t.Register(hooks...)); err != nil {
		t.abandonWorkDir()
		return nil, err
	}
	err = t.DDP.rootDo(func() error { return t.start(opts) })
	if err == nil {
		if n := t.DDP.attach(t.Det); n > 0 {
			t.Log.Info("SyncBN", "layers", n, "ranks", t.DDP.W.Size())
		}
		err = t.DDP.syncFromRoot(t)
	}
	if err != nil {
		t.abandonWorkDir()
		return nil, err
	}
	t.State.WorldSize = t.DDP.W.Size()
	return t, nil
}

// MaxIter is solver.max_iter.
func (t *Trainer) MaxIter() int64 { return int64(t.Cfg.Solver.MaxIter) }

// Finished tells whether the iterations reached solver.max_iter without
// error (an AfterTrain hook's failure, e.g. the final evaluation, does not
// stop the others: the final checkpoint is still saved).
func (t *Trainer) Finished() bool { return t.loopErr == nil && t.State.Iter == t.MaxIter() }

// Run trains from State.Iter to solver.max_iter: BeforeTrain hooks, the
// iterations, AfterTrain hooks (also after an error).
func (t *Trainer) Run() (err error) {
	lc := glue.TrainLoader(t.Cfg, t.State.Iter, t.Log)
	lc.Rank, lc.WorldSize = t.DDP.W.Rank(), t.DDP.W.Size() // this rank's slice of each batch
	if t.loader, err = data.NewLoader(t.TrainDS, lc); err != nil {
		return err
	}
	defer t.loader.Close()
	if t.Events == nil {
		t.Events = newFileEvents(t.WorkDir, t.Log)
	}
	defer func() {
		if e := t.Events.Close(); err == nil {
			err = e
		}
	}()
	defer t.Close()
	t.started = time.Now()
	t.err = t.each(false, func(h Hook) error { return h.BeforeTrain(t) })
	for it := t.State.Iter; t.err == nil && it < t.MaxIter(); it++ {
		t.err = t.iteration(it)
	}
	t.loopErr = t.err
	for _, h := range t.hooks {
		if e := h.AfterTrain(t); e != nil && t.err == nil {
			t.err = e
		}
	}
	return t.err
}

// iteration runs one iteration: the batch, BeforeStep hooks, the step,
// the counters, AfterStep hooks.
func (t *Trainer) iteration(it int64) error {
	t.Step = Step{Iter: it, Start: time.Now()}
	b, err := t.loader.Next()
	// every rank's batch or error, the same on all; padded to the global shape
	if b, err = t.DDP.batch(b, err, it); err != nil {
		return fmt.Errorf("iteration %d: data: %w", it, err)
	}
	t.Step.Batch, t.Step.Input = b, glue.TrainInput(b, t.labels)
	t.Step.DataTime = time.Since(t.Step.Start).Seconds()
	if err := t.each(true, func(h Hook) error { return h.BeforeStep(t) }); err != nil {
		return err
	}
	if err := t.runStep(); err != nil {
		return err
	}
	t.Step.Time = time.Since(t.Step.Start).Seconds()
	t.State.Iter, t.State.LoaderIter, t.State.Epoch = it+1, it+1, b.Epoch
	return t.each(false, func(h Hook) error { return h.AfterStep(t) })
}

// runStep is the step and nothing else: forward and backward on
// Step.Input, AfterBackward hooks (DataParallel first: the losses and
// gradients averaged over the ranks), gradient clipping, the SGD update
// with Step.LR. A non-finite loss or gradient norm stops the run before
// the update (on every rank alike: they are averaged).
func (t *Trainer) runStep() error {
	it := t.Step.Iter
	losses, prog, err := t.Det.TrainStep(t.Step.Input)
	if err != nil {
		return fmt.Errorf("iteration %d: %w", it, err)
	}
	t.Step.Losses, t.Step.Program = losses, prog
	t.Step.Grads = make([][]float32, len(prog.Params))
	for i := range prog.Params {
		t.Step.Grads[i] = prog.Gradient(i)
	}
	if err := t.each(true, func(h Hook) error { return h.AfterBackward(t) }); err != nil {
		return err
	}
	if err := t.Step.Losses.CheckFinite(); err != nil {
		return t.DDP.same(fmt.Errorf("%w at iteration %d: %v; stopped, no update applied; last good checkpoint: %s", ErrNonFinite, it+1, err, t.lastGood()))
	}
	t.lossFinite()
	gnorm := ClipGradNorm(t.Step.Grads, t.Cfg.Solver.ClipGradNorm)
	if math.IsNaN(gnorm) || math.IsInf(gnorm, 0) {
		return t.DDP.same(fmt.Errorf("%w at iteration %d: gradient norm is %v; stopped, no update applied; last good checkpoint: %s", ErrNonFinite, it+1, gnorm, t.lastGood()))
	}
	t.Step.GradNorm = gnorm
	return t.Opt.Step(prog.Params, t.Step.Grads, t.Step.LR)
}
