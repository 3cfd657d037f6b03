package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeCfg(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSetErrorsNameSet: an unknown section created by --set is reported
// as an error of --set, not of the YAML file (issue 12).
func TestSetErrorsNameSet(t *testing.T) {
	p := writeCfg(t, "solver: {base_lr: 0.01}\n")
	_, _, err := LoadFile(p, []string{"foo.bar=1"})
	var ce *Error
	if !errors.As(err, &ce) || ce.File != SetSource || !strings.Contains(err.Error(), `unknown key "foo"`) {
		t.Fatalf("--set foo.bar=1: %v", err)
	}
}

// TestSetMappingMerges: --set 'solver={base_lr: 0.1}' changes base_lr and
// keeps the file's other solver values (issue 12: the whole section fell
// back to the built-in defaults).
func TestSetMappingMerges(t *testing.T) {
	p := writeCfg(t, "solver: {base_lr: 0.01, max_iter: 77, steps: [50], ims_per_batch: 3}\n")
	f, _, err := LoadFile(p, []string{"solver={base_lr: 0.1, gamma: 0.5}"})
	if err != nil {
		t.Fatal(err)
	}
	s := f.Solver
	if s.BaseLR != 0.1 || s.Gamma != 0.5 || s.MaxIter != 77 || s.IMSPerBatch != 3 || len(s.Steps) != 1 || s.Steps[0] != 50 {
		t.Errorf("solver after --set of a mapping: %+v", s)
	}
}

// TestValidateNamesKey: each invalid value is refused naming its key and
// value (issue 12: NaN/Inf learning rates and negative warmup were
// accepted, transform settings failed late without the key, and combined
// checks did not say which key was wrong).
func TestValidateNamesKey(t *testing.T) {
	p := writeCfg(t, "solver: {base_lr: 0.01}\n")
	cases := []struct{ set, want string }{
		{"solver.base_lr=.nan", "solver.base_lr is NaN"},
		{"solver.base_lr=-.inf", "solver.base_lr is -Inf"},
		{"solver.base_lr=0", "solver.base_lr is 0"},
		{"solver.momentum=.nan", "solver.momentum is NaN"},
		{"solver.weight_decay=.inf", "solver.weight_decay is +Inf"},
		{"solver.gamma=.nan", "solver.gamma is NaN"},
		{"solver.warmup_factor=.nan", "solver.warmup_factor is NaN"},
		{"solver.clip_grad_norm=.nan", "solver.clip_grad_norm is NaN"},
		{"solver.warmup_iters=-1", "solver.warmup_iters is -1"},
		{"solver.max_iter=0", "solver.max_iter is 0"},
		{"solver.ims_per_batch=-2", "solver.ims_per_batch is -2"},
		{"input.min_size=[800, -1]", "input.min_size[1] is -1"},
		{"input.min_size=[]", "input.min_size is empty"},
		{"input.max_size=0", "input.max_size is 0"},
		{"input.size_divisible=-32", "input.size_divisible is -32"},
		{"input.flip_prob=.nan", "input.flip_prob is NaN"},
		{"data.workers=-1", "data.workers is -1"},
		{"data.max_image_pixels=0", "data.max_image_pixels is 0"},
		{"data.max_unreadable=2", "data.max_unreadable is 2"},
		{"train.checkpoint_period=-1", "train.checkpoint_period is -1"},
		{"distill.weight=.nan", "distill.weight is NaN"},
		{"distill.options={tau: .inf}", "distill.options.tau is +Inf"},
		{"model.rpn.nms_thresh=.nan", "model.rpn.nms_thresh is NaN"},
		{"model.roi_heads.score_thresh=.nan", "model.roi_heads.score_thresh is NaN"},
		{"model.backbone.width_mult=.nan", "model.backbone.width_mult is NaN"},
		{"model.rpn.anchor_sizes=[[32], [.nan]]", "model.rpn.anchor_sizes[1][0] is NaN"},
		{"model.rpn.anchor_sizes=[[32], [-64]]", "model.rpn.anchor_sizes[1][0] is -64"},
		{"model.rpn.post_nms_top_n_test=0", "model.rpn.post_nms_top_n_test is 0"},
		{"model.rpn.positive_fraction=0", "model.rpn.positive_fraction is 0"},
		{"model.roi_heads.batch_size_per_image=-1", "model.roi_heads.batch_size_per_image is -1"},
	}
	for _, c := range cases {
		_, _, err := LoadFile(p, []string{c.set})
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: %v, want an error containing %q", c.set, err, c.want)
		}
	}
	if _, _, err := LoadFile(p, nil); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
