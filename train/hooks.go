package train

import "fmt"

// Hook is a piece of training logic that the loop calls at fixed points,
// as detectron2's HookBase (engine/hooks.py): evaluation, checkpoints,
// metrics, plots, the LR schedule and distillation are hooks over the
// Trainer's public surface (Cfg, Det, Opt, State, Step, Events, Out, Log,
// SaveCheckpoint). Hooks run in registration order at every point. Embed
// HookBase to implement only the points a hook needs.
//
// One iteration: BeforeStep (the batch is in Step.Input), the forward and
// backward pass, AfterBackward (losses in Step.Losses, gradients in
// Step.Grads, before the finite-loss guard, clipping and the solver
// update: where DataParallel, registered first, averages them across
// ranks), the update, then AfterStep (State.Iter counts the iteration).
//
// A hook with state (a random stream) returns it from State; it is saved
// in every checkpoint under the hook's Name and given back to LoadState
// when a run resumes.
type Hook interface {
	Name() string
	// Register is called once, when the hook joins the trainer (before
	// any checkpoint or weights are loaded): a hook that adds parameters
	// to the detector adds them here.
	Register(t *Trainer) error
	BeforeTrain(t *Trainer) error
	BeforeStep(t *Trainer) error
	AfterBackward(t *Trainer) error
	AfterStep(t *Trainer) error
	// AfterTrain runs when the loop ends, also after an error (then
	// t.Finished() is false).
	AfterTrain(t *Trainer) error
	State() ([]byte, error)
	LoadState([]byte) error
}

// Extension is the name Options use for a hook added to the defaults
// (distillation).
type Extension = Hook

// HookBase implements every Hook method as a no-op (no state).
type HookBase struct{}

func (HookBase) Register(*Trainer) error      { return nil }
func (HookBase) BeforeTrain(*Trainer) error   { return nil }
func (HookBase) BeforeStep(*Trainer) error    { return nil }
func (HookBase) AfterBackward(*Trainer) error { return nil }
func (HookBase) AfterStep(*Trainer) error     { return nil }
func (HookBase) AfterTrain(*Trainer) error    { return nil }
func (HookBase) State() ([]byte, error)       { return nil, nil }
func (HookBase) LoadState([]byte) error       { return nil }

// DefaultHooks are the hooks of a run with the extensions in their place:
// the LR schedule and the periodic log (stdout, metrics.jsonl,
// TensorBoard) first, then the extensions, then evaluation, the best
// checkpoint, the periodic and final checkpoints and the plots. So a
// checkpoint holds every hook's state after the iteration it counts, and
// the run's metrics are written before it is evaluated and saved.
func DefaultHooks(extensions ...Hook) []Hook {
	hs := []Hook{&LRSchedule{}, &PeriodicLog{}}
	hs = append(hs, extensions...)
	return append(hs, &Evaluation{}, &BestCheckpoint{}, &PeriodicCheckpoint{}, &Plots{})
}

// Register adds hooks after those already registered.
func (t *Trainer) Register(hooks ...Hook) error {
	for _, h := range hooks {
		if err := h.Register(t); err != nil {
			return fmt.Errorf("%s: %w", h.Name(), err)
		}
		t.hooks = append(t.hooks, h)
	}
	return nil
}

// each calls f on every hook in order and stops at the first error; with
// named, the error is prefixed with the iteration and the hook's name
// (the points inside a step, whose hooks do not say where they failed).
func (t *Trainer) each(named bool, f func(Hook) error) error {
	for _, h := range t.hooks {
		if err := f(h); err != nil {
			if named {
				return fmt.Errorf("iteration %d: %s: %w", t.Step.Iter, h.Name(), err)
			}
			return err
		}
	}
	return nil
}

// hookStates collects the hooks' states for a checkpoint.
func (t *Trainer) hookStates() (map[string][]byte, error) {
	m := map[string][]byte{}
	for _, h := range t.hooks {
		s, err := h.State()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name(), err)
		}
		if s != nil {
			m[h.Name()] = s
		}
	}
	return m, nil
}

// loadHookStates gives every hook its state from a checkpoint.
func (t *Trainer) loadHookStates(m map[string][]byte) error {
	for _, h := range t.hooks {
		if b, ok := m[h.Name()]; ok {
			if err := h.LoadState(b); err != nil {
				return fmt.Errorf("%s: %w", h.Name(), err)
			}
		}
	}
	return nil
}
