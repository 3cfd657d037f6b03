package train

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/skd-go/skd/config"
)

// tinyRun is a configuration of a tiny detector on a tiny synthetic set
// (data.synth generates it in a temporary directory).
func tinyRun(t *testing.T) *config.File {
	t.Helper()
	f := config.Default()
	c := &f.Model
	c.Backbone.Depth, c.Backbone.WidthMult = 18, 0.125
	c.FPNChannels = 16
	c.RoI.RepresentationSize, c.RoI.NumClasses, c.RoI.BatchSizePerImg = 32, 6, 32
	c.RPN.BatchSizePerImg, c.RPN.PreNMSTopNTrain, c.RPN.PostNMSTopNTrain = 64, 200, 100
	c.RPN.PreNMSTopNTest, c.RPN.PostNMSTopNTest = 100, 50
	f.Input.MinSize, f.Input.MinSizeTest, f.Input.MaxSize = []int{96}, 96, 96
	f.Data.Synth = config.SynthConfig{Dir: filepath.Join(t.TempDir(), "synth"), Train: 4, Val: 2, Seed: 3, Size: 96}
	f.Data.Workers = 1
	f.Solver.IMSPerBatch, f.Solver.BaseLR, f.Solver.MaxIter, f.Solver.Steps = 2, 0.01, 4, nil
	f.Train.WorkDir, f.Train.LogPeriod, f.Train.CheckpointPeriod, f.Train.EvalPeriod, f.Train.Seed = filepath.Join(t.TempDir(), "work"), 1, 2, 0, 5
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	return &f
}

// recorder is a hook that logs the points it sees and keeps a counter as
// its checkpointed state.
type recorder struct {
	HookBase
	log      []string
	steps    int
	restored string
	t        *testing.T
	w0       float32 // a trainable weight when the gradients arrive
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Register(t *Trainer) error {
	r.log = append(r.log, "register")
	return nil
}
func (r *recorder) BeforeTrain(t *Trainer) error {
	r.log = append(r.log, fmt.Sprintf("before_train@%d", t.State.Iter))
	return nil
}
func (r *recorder) BeforeStep(t *Trainer) error {
	if t.Step.Input == nil || t.Step.LR <= 0 {
		r.t.Errorf("iteration %d: BeforeStep without the batch or the learning rate", t.Step.Iter)
	}
	r.log = append(r.log, fmt.Sprintf("before_step@%d", t.Step.Iter))
	return nil
}
func (r *recorder) AfterBackward(t *Trainer) error {
	if len(t.Step.Grads) == 0 || t.Step.Losses["total"] <= 0 {
		r.t.Errorf("iteration %d: AfterBackward without gradients or losses", t.Step.Iter)
	}
	r.w0 = t.Step.Program.Params[0].Data()[0]
	return nil
}
func (r *recorder) AfterStep(t *Trainer) error {
	if t.Step.Program.Params[0].Data()[0] == r.w0 {
		r.t.Errorf("iteration %d: the update did not happen between AfterBackward and AfterStep", t.Step.Iter)
	}
	r.steps++
	if _, err := os.Stat(filepath.Join(t.WorkDir, "checkpoints", fmt.Sprintf("iter_%07d", t.State.Iter))); err == nil {
		r.t.Errorf("iteration %d: checkpoint saved before the extension's AfterStep", t.Step.Iter)
	}
	r.log = append(r.log, fmt.Sprintf("after_step@%d", t.State.Iter))
	return nil
}
func (r *recorder) AfterTrain(t *Trainer) error {
	r.log = append(r.log, fmt.Sprintf("after_train finished=%v", t.Finished()))
	return nil
}
func (r *recorder) State() ([]byte, error) { return []byte(strconv.Itoa(r.steps)), nil }
func (r *recorder) LoadState(b []byte) error {
	r.restored = string(b)
	return nil
}

// TestHooks: an extension hook sees every point in order (gradients
// before the update, the update before AfterStep), runs before the
// checkpoint hook (so a checkpoint holds its state after the iteration),
// and gets that state back when a run resumes.
func TestHooks(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	cfg := tinyRun(t)
	rec := &recorder{t: t}
	var out bytes.Buffer
	tr, err := New(Options{Config: cfg, Resolved: []byte("tiny\n"), Out: &out, Extensions: []Extension{rec}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := "register before_train@0 before_step@0 after_step@1 before_step@1 after_step@2 before_step@2 after_step@3 before_step@3 after_step@4 after_train finished=true"
	if got := strings.Join(rec.log, " "); got != want {
		t.Errorf("hook points:\n got %s\nwant %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(cfg.Train.WorkDir, "checkpoints", "model_final", ModelFile)); err != nil {
		t.Error(err)
	}
	if tr.Eval.Iter != 4 || tr.State.BestIter != 4 || tr.State.BestAP != tr.Eval.Stats[0] {
		t.Errorf("final evaluation %+v, best AP %v at %d", tr.Eval, tr.State.BestAP, tr.State.BestIter)
	}
	if _, err := os.Stat(filepath.Join(cfg.Train.WorkDir, "checkpoints", "best", ModelFile)); err != nil {
		t.Error(err)
	}
	st, err := os.ReadFile(filepath.Join(cfg.Train.WorkDir, "checkpoints", "iter_0000002", StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), `"recorder"`) {
		t.Errorf("the hook's state is not in the checkpoint:\n%s", st)
	}
	again := &recorder{t: t}
	tr, err = New(Options{Config: cfg, Resolved: []byte("tiny\n"), Out: &out, Resume: filepath.Join(cfg.Train.WorkDir, "checkpoints", "iter_0000002"), Extensions: []Extension{again}})
	if err != nil {
		t.Fatal(err)
	}
	if again.restored != "2" || !tr.Resumed || tr.State.Iter != 2 {
		t.Errorf("resumed hook state %q (want 2), resumed %v at %d", again.restored, tr.Resumed, tr.State.Iter)
	}
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(again.log, " "); !strings.HasPrefix(got, "register before_train@2 before_step@2 after_step@3") {
		t.Errorf("resumed run's hook points: %s", got)
	}
}
