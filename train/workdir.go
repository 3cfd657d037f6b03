package train

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skd-go/skd/config"
)

// workDir is what a Trainer holds of its work dir besides the files: the
// advisory lock and the bookkeeping of the last good checkpoint.
type workDir struct {
	lock *dirLock
	// pending is the checkpoint last_checkpoint names whose weights have
	// not yet produced a finite loss; good the newest one that has.
	pending, good string
	// created: openWorkDir made the directory (abandonWorkDir removes it)
	created bool
}

// LockFile is the work-dir file that holds the advisory lock (flock) of
// the run using the directory, and its process id.
const LockFile = ".lock"

// ErrWorkDirInUse marks a work dir locked by another run.
var ErrWorkDirInUse = errors.New("work dir in use")

// ErrWorkDirHoldsRun marks a fresh run refused in a work dir that holds
// one (pass Resume or Force).
var ErrWorkDirHoldsRun = errors.New("work dir holds a run")

// openWorkDir creates the work dir, checks that it is writable, locks it
// (another run on it is refused, naming its pid), refuses a fresh run in a
// work dir holding one unless Options.Force moves that run aside to
// DIR.old-TIMESTAMP, and recovers interrupted checkpoint writes.
func (t *Trainer) openWorkDir() (err error) {
	defer func() {
		if err != nil {
			t.Close()
			t.wd = nil
		}
	}()
	dir := t.WorkDir
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("work dir %s: %w", dir, err)
	}
	probe := filepath.Join(dir, ".write-test")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		return fmt.Errorf("work dir %s is not writable: %w", dir, err)
	}
	os.Remove(probe)
	lk, err := lockDir(dir)
	if err != nil {
		return err
	}
	t.wd = &workDir{lock: lk, created: os.IsNotExist(statErr)}
	if t.opts.Resume == "" {
		if what := holdsRun(dir); what != "" {
			if !t.opts.Force {
				return fmt.Errorf("%w: %s already holds a run (%s): pass --resume to continue it, or --force to move it aside to %s.old-TIMESTAMP and start afresh (or choose another train.work_dir)",
					ErrWorkDirHoldsRun, dir, what, filepath.Clean(dir))
			}
			if err := t.moveAside(); err != nil {
				return err
			}
		}
	}
	return Recover(dir)
}

// moveAside renames the locked work dir to DIR.old-TIMESTAMP and starts
// an empty, locked one in its place.
func (t *Trainer) moveAside() error {
	dir := filepath.Clean(t.WorkDir)
	stamp := time.Now().Format("20060102-150405")
	aside := dir + ".old-" + stamp
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); os.IsNotExist(err) {
			break
		}
		aside = fmt.Sprintf("%s.old-%s-%d", dir, stamp, i)
	}
	if err := os.Rename(dir, aside); err != nil {
		return fmt.Errorf("--force: moving the previous run aside: %w", err)
	}
	old := t.wd.lock
	defer old.release()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("work dir %s: %w", dir, err)
	}
	t.wd.lock = nil
	lk, err := lockDir(dir)
	if err != nil {
		return err
	}
	t.wd.lock = lk
	t.Log.Warn("--force: moved the previous run aside", "from", dir, "to", aside)
	return nil
}

// holdsRun describes what in dir belongs to a run ("" if nothing does):
// a checkpoint pointer, a checkpoint, or logged metrics.
func holdsRun(dir string) string {
	if raw, err := os.ReadFile(filepath.Join(dir, LastPointer)); err == nil {
		return "last checkpoint " + strings.TrimSpace(string(raw))
	}
	if es, err := os.ReadDir(filepath.Join(dir, checkpoints)); err == nil {
		for _, e := range es {
			if !strings.HasPrefix(e.Name(), ".") {
				return "checkpoint " + filepath.Join(checkpoints, e.Name())
			}
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "metrics.jsonl")); err == nil && st.Size() > 0 {
		return "metrics.jsonl with logged iterations"
	}
	return ""
}

// writeConfig saves the resolved configuration as WORK_DIR/config.yaml,
// once the run has been set up (so a failed --resume leaves the previous
// one in place).
func (t *Trainer) writeConfig() error {
	return config.Save(filepath.Join(t.WorkDir, "config.yaml"), t.opts.Resolved)
}

// Close releases the work-dir lock (Run does it when it returns; call
// Close for a Trainer that is never run).
func (t *Trainer) Close() {
	if t.wd != nil && t.wd.lock != nil {
		t.wd.lock.release()
		t.wd.lock = nil
	}
}

// abandonWorkDir ends a run that failed to start: it releases the lock
// and removes the work dir if openWorkDir created it and it holds nothing
// else (a rank that could not read the dataset leaves no work dir behind).
func (t *Trainer) abandonWorkDir() {
	t.Close()
	if t.wd == nil || !t.wd.created {
		return
	}
	os.Remove(filepath.Join(t.WorkDir, LockFile))
	if err := os.Remove(t.WorkDir); err == nil {
		t.wd.created = false
	}
}

// checkpointSaved records that last_checkpoint now names dir, a
// checkpoint not yet known to be good.
func (t *Trainer) checkpointSaved(dir string) {
	if t.wd != nil {
		t.wd.pending = dir
	}
}

// resumedFrom makes last_checkpoint name dir, the checkpoint a run
// resumed from (relative to the work dir when inside it, else absolute),
// so that a kill before the next checkpoint resumes from it again and not
// from a later checkpoint of the abandoned continuation (after --resume
// of an earlier checkpoint). Until its weights give a finite loss it is
// not known to be good.
func (t *Trainer) resumedFrom(dir string) error {
	t.checkpointSaved(dir)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	wd, err := filepath.Abs(t.WorkDir)
	if err != nil {
		return err
	}
	name := abs
	if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
		name = rel
	}
	if err := writeAtomic(filepath.Join(t.WorkDir, LastPointer), []byte(name+"\n")); err != nil {
		return fmt.Errorf("resume: %s: %w", LastPointer, err)
	}
	return nil
}

// lossFinite records that the current weights gave a finite loss: the
// checkpoint holding them (if one was saved) is good.
func (t *Trainer) lossFinite() {
	if t.wd != nil && t.wd.pending != "" {
		t.wd.good, t.wd.pending = t.wd.pending, ""
	}
}

// lastGood names the last good checkpoint after a non-finite loss: one
// whose weights are finite and gave a finite loss. When last_checkpoint
// names a checkpoint whose weights gave this very loss, it is pointed back
// at the last good one, so that --resume does not start from weights that
// fail at once.
func (t *Trainer) lastGood() string {
	if t.wd == nil {
		return "none"
	}
	if t.wd.pending != "" && t.wd.good != "" {
		rel, err := filepath.Rel(t.WorkDir, t.wd.good)
		if err == nil {
			if err := writeAtomic(filepath.Join(t.WorkDir, LastPointer), []byte(rel+"\n")); err != nil {
				t.Log.Warn("could not point last_checkpoint at the last good checkpoint", "err", err)
			}
		}
	}
	switch {
	case t.wd.good != "":
		return t.wd.good
	case t.wd.pending != "":
		return fmt.Sprintf("none (%s gives this non-finite loss)", t.wd.pending)
	}
	return "none"
}

// checkWeightsFinite refuses to checkpoint weights holding NaN or Inf.
func (t *Trainer) checkWeightsFinite() error {
	for _, p := range t.Det.Reg.Params() {
		for i, v := range p.Data() {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%w after iteration %d: parameter %s[%d] is %v; stopped, not saved; last good checkpoint: %s",
					ErrNonFinite, t.State.Iter, p.Name, i, v, t.lastGood())
			}
		}
	}
	return nil
}
