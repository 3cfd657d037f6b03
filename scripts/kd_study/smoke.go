package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// smokeYAML shrinks a study config to a tiny detector on a tiny hard set,
// so that the whole plan runs in a minute or two.
const smokeYAML = `_base_: %s
model:
  backbone: {width_mult: 0.125}
  fpn_channels: 16
  roi_heads: {representation_size: 32, batch_size_per_image: 32}
  rpn: {batch_size_per_image: 64, pre_nms_top_n_train: 200, post_nms_top_n_train: 100, pre_nms_top_n_test: 100, post_nms_top_n_test: 50}
input: {min_size: [96], min_size_test: 96, max_size: 96}
data:
  synth: {dir: %s, train: 8, val: 4, holdout: 4, size: 96}
  workers: 1
solver: {ims_per_batch: 2, max_iter: 4, steps: [2, 3], warmup_iters: 1}
train: {log_period: 1, eval_period: 2, checkpoint_period: 2}
`

// smokeConfig writes a tiny version of config base into dir.
func smokeConfig(dir, base, set string) (string, error) {
	abs, err := filepath.Abs(base)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, filepath.Base(base))
	return p, os.WriteFile(p, []byte(fmt.Sprintf(smokeYAML, abs, set)), 0o644)
}

// smoke runs the whole plan on a tiny budget in a temporary directory,
// then runs it again (finished runs must be skipped, a lost one retrained) and checks the report.
// Nothing is written in the repository.
func smoke(o options) error {
	start := time.Now()
	tmp, err := os.MkdirTemp("", "kd_study-smoke-")
	if err != nil {
		return err
	}
	if os.Getenv("KD_STUDY_KEEP") == "" {
		defer os.RemoveAll(tmp)
	}
	o.work, o.results = filepath.Join(tmp, "work"), filepath.Join(tmp, "results")
	o.kdDoc = filepath.Join(tmp, "KD.md")
	if err := os.WriteFile(o.kdDoc, []byte("# KD\n\nbefore\n\n"+blockBegin+"\nold\n"+blockEnd+"\n\nafter\n"), 0o644); err != nil {
		return err
	}
	set := filepath.Join(tmp, "set")
	if o.teacher, err = smokeConfig(tmp, o.teacher, set); err != nil {
		return err
	}
	if o.student, err = smokeConfig(tmp, o.student, set); err != nil {
		return err
	}
	o.seeds, o.extraSeeds = []string{"1", "2"}, []string{"1"}
	o.budget, o.maxBudget = 2, 4 // converge 0: never converged, so the budget doubles once and stops at the maximum
	o.converge = 0
	o.sweepFrac = 1
	o.grid = []float64{1}
	o.sweepWeightsOverride = map[string][]float64{"ssim": {1, 2}}
	o.parallel = 1
	var log bytes.Buffer
	o.progressOut = os.Stdout
	if err := runStudy(o); err != nil {
		return err
	}
	// Again, after losing one run's results file (its finished work dir
	// is harvested again, not retrained) and another run altogether (it
	// is trained again): nothing else is trained.
	if err := os.Remove(filepath.Join(o.results, "runs", "main", "l2_w1_b4_s2.json")); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(o.results, "runs", "main", "l1_w1_b4_s2.json")); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(o.work, "main", "l1_w1_b4_s2")); err != nil {
		return err
	}
	// A run interrupted after iteration 2 (its last checkpoint) resumes.
	ssim := filepath.Join(o.work, "main", "ssim_w1_b4_s2")
	if err := os.RemoveAll(filepath.Join(ssim, "checkpoints", "model_final")); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ssim, "last_checkpoint"), []byte("checkpoints/iter_0000002"), 0o644); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(o.results, "runs", "main", "ssim_w1_b4_s2.json")); err != nil {
		return err
	}
	o.progressOut = &log
	if err := runStudy(o); err != nil {
		return err
	}
	if n := strings.Count(log.String(), "kdtrain --config"); n != 2 || !strings.Contains(log.String(), "main/l1_w1_b4_s2: kdtrain") ||
		!strings.Contains(log.String(), "main/ssim_w1_b4_s2: kdtrain") || !strings.Contains(log.String(), " --resume\n") ||
		!strings.Contains(log.String(), "main/l2_w1_b4_s2: AP") || strings.Contains(log.String(), "moved to") {
		return fmt.Errorf("smoke: the second pass should train main/l1_w1_b4_s2, resume main/ssim_w1_b4_s2 and harvest main/l2_w1_b4_s2; it trained %d runs:\n%s", n, log.String())
	}
	doc, err := os.ReadFile(o.kdDoc)
	if err != nil {
		return err
	}
	for _, want := range []string{"before", "after", "| none | - | 2 |", "| ssim | ", "| pkd | ", "SSIM vs", "#### Convergence", "| 2 | 2 |", "| 4 | 2 |",
		"holdout", "(chosen)", "terms=cs", "window=5", "](results/ap_curves.png)", "Teacher AP as loaded by the KD runs"} {
		if !strings.Contains(string(doc), want) {
			return fmt.Errorf("smoke: the report lacks %q:\n%s", want, doc)
		}
	}
	if strings.Contains(string(doc), "\nold\n") {
		return fmt.Errorf("smoke: the old block was not replaced")
	}
	for _, p := range []string{"ap_curves.png", "study.md", "runs/teacher.json", "runs/converge/none_b4_s2.json", "runs/sweep/ssim_w2_b4_s1.json", "runs/main/mgd_w2e-05_b4_s1.json"} {
		if _, err := os.Stat(filepath.Join(o.results, p)); err != nil {
			return fmt.Errorf("smoke: %w", err)
		}
	}
	fmt.Printf("kd_study smoke: the whole plan ran, was skipped on the second pass, and reported, in %s\n", time.Since(start).Round(time.Second))
	return nil
}
