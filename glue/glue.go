// Package glue maps a configuration (package config) onto the components
// that kdtrain, kdeval and kddetect assemble: the dataset splits (the
// synthetic set generated on first use, and the one rule that picks the
// validation split), the image transforms, the data loader, the batch to
// detector input conversion, the class-count check and the KD loss
// configuration. It holds no state and builds no graph; every command and
// the trainer go through it, so they read a configuration the same way.
package glue

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/data/synth"
	"github.com/skd-go/skd/model"
)

// Split is a COCO-format split: an instances file and its image directory.
type Split struct{ Ann, Images string }

// Notify receives a one-line notice (e.g. that a data set is being
// generated); nil discards it.
type Notify func(msg string)

// ensureSynth generates the synthetic set of data.synth when it is set
// and not complete yet, saying so on notice.
func ensureSynth(cfg *config.File, notice Notify) error {
	s := cfg.Data.Synth
	if s.Dir == "" {
		return nil
	}
	if _, err := os.Stat(synth.ValAnnotations(s.Dir)); err != nil && notice != nil {
		notice("generating the synthetic set in " + s.Dir)
	}
	if err := synth.Ensure(s.Dir, synth.Options{Train: s.Train, Val: s.Val, Seed: s.Seed, Size: s.Size, Sizes: s.Sizes, Variant: s.Variant, Holdout: s.Holdout}); err != nil {
		return fmt.Errorf("synthetic dataset %s: %w", s.Dir, err)
	}
	return nil
}

// TrainSplit returns the training split: data.train when set, else the
// synthetic set's (generated first when missing). Both paths must exist.
func TrainSplit(cfg *config.File, notice Notify) (Split, error) {
	if err := ensureSynth(cfg, notice); err != nil {
		return Split{}, err
	}
	sp := Split{cfg.Data.Train.Ann, cfg.Data.Train.Images}
	if sp.Ann == "" && cfg.Data.Synth.Dir != "" {
		sp = Split{synth.TrainAnnotations(cfg.Data.Synth.Dir), synth.TrainImages(cfg.Data.Synth.Dir)}
	}
	if sp.Ann == "" {
		return Split{}, fmt.Errorf("data.train.ann is not set (and no data.synth.dir)")
	}
	for _, p := range []string{sp.Ann, sp.Images} {
		if _, err := os.Stat(p); err != nil {
			return Split{}, fmt.Errorf("dataset path: %w", err)
		}
	}
	return sp, nil
}

// ValSplit returns the validation split, by the one rule that training
// (its periodic evaluation) and kdeval share: data.val when set, else the
// synthetic set's (generated first when missing); ok is false when the
// configuration names neither.
func ValSplit(cfg *config.File, notice Notify) (sp Split, ok bool, err error) {
	if err := ensureSynth(cfg, notice); err != nil {
		return Split{}, false, err
	}
	if cfg.Data.Val.Ann != "" {
		return Split{cfg.Data.Val.Ann, cfg.Data.Val.Images}, true, nil
	}
	if d := cfg.Data.Synth.Dir; d != "" {
		return Split{synth.ValAnnotations(d), synth.ValImages(d)}, true, nil
	}
	return Split{}, false, nil
}

// Transform maps the configuration's input section onto the data
// package's transform. Training uses every input.min_size (one drawn per
// image) and input.flip_prob; evaluation and inference use
// input.min_size_test and never flip.
func Transform(cfg *config.File, train bool) data.TransformConfig {
	in := cfg.Input
	t := data.TransformConfig{MaxSize: in.MaxSize, Format: in.Format, SizeDivisible: in.SizeDivisible}
	if train {
		t.MinSizes = append([]int{}, in.MinSize...)
		t.FlipProb = in.FlipProb
	} else {
		t.MinSizes = []int{in.MinSizeTest}
	}
	return t
}

// TrainLoader is the training loader's configuration (shuffled, infinite,
// starting at global iteration startIter).
func TrainLoader(cfg *config.File, startIter int64, log *slog.Logger) data.LoaderConfig {
	return data.LoaderConfig{BatchSize: cfg.Solver.IMSPerBatch, Workers: cfg.Data.Workers, Seed: cfg.Train.Seed, Shuffle: true, Train: true,
		AspectGrouping: cfg.Data.AspectGrouping, StartIter: startIter, Transform: Transform(cfg, true), Logger: log,
		MaxUnreadable: cfg.Data.MaxUnreadable}
}

// ModelLabels returns the map from the dataset's contiguous labels to the
// model's: nil when data.labels is "contiguous" (the same), the COCO
// category ids when it is "category_id" (torchvision's 91-class models).
// It checks that model.roi_heads.num_classes has room for them.
func ModelLabels(cfg *config.File, ds *data.Dataset, annPath string) ([]int64, error) {
	var m []int64
	need := ds.NumClasses() + 1
	if cfg.Data.Labels == "category_id" {
		m = ds.LabelToCatID
		need = int(m[len(m)-1]) + 1
	}
	if cfg.Model.RoI.NumClasses < need {
		return nil, fmt.Errorf("model.roi_heads.num_classes is %d but %s needs %d (background + labels)", cfg.Model.RoI.NumClasses, annPath, need)
	}
	return m, nil
}

// Input turns a collated batch into the detector's inference input (no
// ground truth). The images are shared, not copied.
func Input(b *data.Batch) *model.Input {
	in := &model.Input{N: b.N, H: b.H, W: b.W, Images: b.Images, Sizes: make([][2]int, len(b.Items))}
	for i, it := range b.Items {
		in.Sizes[i] = [2]int{it.H, it.W}
	}
	return in
}

// TrainInput is Input plus each image's ground truth: boxes (x1,y1,x2,y2
// in resized pixels, flattened) and labels, the batch's contiguous labels
// mapped through labels (ModelLabels; nil: unchanged).
func TrainInput(b *data.Batch, labels []int64) *model.Input {
	in := Input(b)
	in.GT = make([][]float32, len(b.Items))
	in.GTLabels = make([][]int, len(b.Items))
	for i, it := range b.Items {
		gt := make([]float32, 0, 4*len(it.Boxes))
		for _, bx := range it.Boxes {
			gt = append(gt, bx[0], bx[1], bx[2], bx[3])
		}
		in.GT[i] = gt
		in.GTLabels[i] = append([]int{}, it.Labels...)
		if labels != nil {
			for j, l := range in.GTLabels[i] {
				in.GTLabels[i][j] = int(labels[l])
			}
		}
	}
	return in
}
