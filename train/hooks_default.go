package train

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/skd-go/skd/plots"
)

// LRSchedule sets each iteration's learning rate (Step.LR) from
// Trainer.Sched: linear warmup, then multi-step decay.
type LRSchedule struct{ HookBase }

func (*LRSchedule) Name() string { return "lr_schedule" }

func (*LRSchedule) BeforeStep(t *Trainer) error {
	t.Step.LR = t.Sched.LR(int(t.Step.Iter))
	return nil
}

// PeriodicLog prints a progress line and records the losses, learning
// rate, gradient norm, timing and memory (metrics.jsonl, TensorBoard
// train/*) every train.log_period iterations, on the first iteration of
// the run and on the last.
type PeriodicLog struct {
	HookBase
	startIter          int64
	dataTime, stepTime float64
	// data-parallel communication (Step.CommTime, CommExposed, CommWait)
	comm, exposed, wait float64
}

func (*PeriodicLog) Name() string { return "periodic_log" }

func (h *PeriodicLog) BeforeTrain(t *Trainer) error {
	h.startIter, h.dataTime, h.stepTime = t.State.Iter, 0, 0
	h.comm, h.exposed, h.wait = 0, 0, 0
	return nil
}

func (h *PeriodicLog) AfterStep(t *Trainer) error {
	h.dataTime += t.Step.DataTime
	h.stepTime += t.Step.Time
	h.comm += t.Step.CommTime
	h.exposed += t.Step.CommExposed
	h.wait += t.Step.CommWait
	done, maxIter := t.State.Iter, t.MaxIter()
	if done%int64(max(t.Cfg.Train.LogPeriod, 1)) != 0 && done != maxIter && t.Step.Iter != h.startIter {
		return nil
	}
	n := float64(done - h.startIter)
	sPerIt, dataPerIt := h.stepTime/n, h.dataTime/n
	l, lr, gnorm := t.Step.Losses, t.Step.LR, t.Step.GradNorm
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
	fmt.Fprintf(t.Out, "iter %d/%d  loss %.4f (%s)  lr %.5f  %.3f s/it  data %.3f s  mem %.0f MiB  eta %s\n",
		done, maxIter, l["total"], strings.Join(parts, ", "), lr, sPerIt, dataPerIt, mem, eta.Round(time.Second))
	rec := map[string]any{"iter": done, "lr": lr, "time": sPerIt, "data_time": dataPerIt, "memory": mem, "grad_norm": gnorm, "elapsed": time.Since(t.started).Seconds()}
	scal := map[string]float64{"lr": lr, "time": sPerIt, "grad_norm": gnorm}
	if ranks := t.DDP.W.Size(); ranks > 1 {
		// per iteration since the run started, as "time"
		rec["comm_time"], rec["comm_exposed"], rec["comm_wait"] = h.comm/n, h.exposed/n, h.wait/n
		rec["ranks"] = ranks
	}
	for k, v := range l {
		rec[k] = v
		scal["train/"+k] = v
	}
	t.Events.Write(done, rec, scal)
	return nil
}

// Evaluation runs the COCO evaluation of the val split every
// train.eval_period iterations and at the end of a finished run, records
// it (metrics.jsonl, TensorBoard val/*) and leaves it in Trainer.Eval.
type Evaluation struct{ HookBase }

func (*Evaluation) Name() string { return "evaluation" }

func (h *Evaluation) AfterStep(t *Trainer) error {
	done, p := t.State.Iter, int64(t.Cfg.Train.EvalPeriod)
	if p > 0 && done%p == 0 && done != t.MaxIter() {
		return h.evaluate(t, done)
	}
	return nil
}

func (h *Evaluation) AfterTrain(t *Trainer) error {
	if !t.Finished() {
		return nil
	}
	return h.evaluate(t, t.MaxIter())
}

func (h *Evaluation) evaluate(t *Trainer, done int64) error {
	if t.ValAnn == "" {
		return nil
	}
	t0 := time.Now()
	res, err := t.evalDataset(t.Det, t.Cfg) // sharded over the ranks, every rank gets the numbers
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
	t.Events.Write(done, rec, scal)
	fmt.Fprintf(t.Out, "eval iter %d: AP %.4f  AP50 %.4f  AP75 %.4f  APs %.4f  APm %.4f  APl %.4f  (%.1f s)\n",
		done, res.Stats[0], res.Stats[1], res.Stats[2], res.Stats[3], res.Stats[4], res.Stats[5], time.Since(t0).Seconds())
	t.Eval = EvalResult{Iter: done, Stats: res.Stats}
	return nil
}

// BestCheckpoint saves checkpoints/best (not named by last_checkpoint)
// when the evaluation of this iteration improves on State.BestAP, as
// detectron2's BestCheckpointer.
type BestCheckpoint struct{ HookBase }

func (*BestCheckpoint) Name() string { return "best_checkpoint" }

func (h *BestCheckpoint) AfterStep(t *Trainer) error { return h.check(t) }

func (h *BestCheckpoint) AfterTrain(t *Trainer) error {
	if !t.Finished() {
		return nil
	}
	return h.check(t)
}

func (*BestCheckpoint) check(t *Trainer) error {
	if t.Eval.Iter != t.State.Iter || t.Eval.Iter == 0 || !(t.Eval.Stats[0] > t.State.BestAP) {
		return nil
	}
	t.State.BestAP, t.State.BestIter = t.Eval.Stats[0], t.Eval.Iter
	_, err := t.SaveCheckpoint("best", false)
	return err
}

// PeriodicCheckpoint saves checkpoints/iter_NNNNNNN every
// train.checkpoint_period iterations and checkpoints/model_final at the
// end of a finished run, each named by last_checkpoint.
type PeriodicCheckpoint struct{ HookBase }

func (*PeriodicCheckpoint) Name() string { return "periodic_checkpoint" }

func (h *PeriodicCheckpoint) AfterStep(t *Trainer) error {
	done, p := t.State.Iter, int64(t.Cfg.Train.CheckpointPeriod)
	if p > 0 && done%p == 0 && done != t.MaxIter() {
		return h.save(t, fmt.Sprintf("iter_%07d", done))
	}
	return nil
}

func (h *PeriodicCheckpoint) AfterTrain(t *Trainer) error {
	if !t.Finished() {
		return nil
	}
	return h.save(t, "model_final")
}

func (*PeriodicCheckpoint) save(t *Trainer, name string) error {
	dir, err := t.SaveCheckpoint(name, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(t.Out, "saved checkpoint %s\n", dir)
	return nil
}

// Plots draws loss_curves.png and ap_curves.png from metrics.jsonl when
// the run ends (also after an error; rank 0 of a data-parallel run); a
// failure is logged.
type Plots struct{ HookBase }

func (*Plots) Name() string { return "plots" }

func (*Plots) AfterTrain(t *Trainer) error {
	if !t.IsRoot() {
		return nil
	}
	if err := PlotWorkDir(t.WorkDir); err != nil {
		t.Log.Warn("plots", "err", err)
	}
	return nil
}

// PlotWorkDir writes loss_curves.png and ap_curves.png from a work dir's
// metrics.jsonl (also on demand: kdtrain plot).
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
