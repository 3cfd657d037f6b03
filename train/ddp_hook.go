package train

// DataParallel is the trainer's side of a data-parallel run (ddp.go), as a
// hook New registers before every other: on ranks other than 0 it makes
// Trainer.Events discard what it is given (rank 0 writes the work dir),
// and after the backward pass it averages the losses and the gradients
// over the ranks (bucketed allreduce), before the other hooks, the
// finite-loss guard, clipping and the update see them, so every rank takes
// the same decisions and the same step. With one process it does nothing.
type DataParallel struct{ HookBase }

// Name implements Hook.
func (*DataParallel) Name() string { return "data_parallel" }

// Register silences the metrics of ranks other than 0.
func (*DataParallel) Register(t *Trainer) error {
	if !t.IsRoot() {
		t.Events = discardEvents{}
	}
	return nil
}

// AfterBackward averages Step.Losses and Step.Grads over the ranks (the
// gradient buckets' allreduces started during the backward pass) and
// records the communication times (Step.CommTime, CommExposed, CommWait).
func (*DataParallel) AfterBackward(t *Trainer) error {
	l, err := t.DDP.reduce(t.Step.Losses, t.Step.Grads)
	if err != nil {
		return err
	}
	t.Step.Losses = l
	t.Step.CommTime, t.Step.CommExposed = t.DDP.Comm.Time.Seconds(), t.DDP.Comm.Exposed.Seconds()
	t.Step.CommWait = t.DDP.CommWait.Seconds()
	return nil
}

// discardEvents is the EventWriter of ranks other than 0.
type discardEvents struct{}

func (discardEvents) Write(int64, map[string]any, map[string]float64) {}
func (discardEvents) Close() error                                    { return nil }

// IsRoot reports whether this process writes the work dir: rank 0 of a
// data-parallel run, or the only process.
func (t *Trainer) IsRoot() bool { return t.DDP == nil || t.DDP.Root() }

// RootDo runs f on rank 0 once every rank has reached this point (a
// checkpoint written by f then records a step every rank has finished)
// and returns its error on every rank, agreed. With one process it is
// f(). Hooks that write files beside the checkpoints use it.
func (t *Trainer) RootDo(f func() error) error {
	if t.DDP == nil {
		return f()
	}
	return t.DDP.rootDo(f)
}
