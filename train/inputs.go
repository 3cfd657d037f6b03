package train

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/data"
)

// checkInputs checks at start what would otherwise fail only later: the
// image size limit is applied, the training images are not all missing
// (a wrong data.train.images), and the val split (when there is one)
// loads, fits the model and has images to evaluate, so that a bad val set
// is an error before the first iteration rather than after the last.
func (t *Trainer) checkInputs(trainAnn, trainImgs string) error {
	data.SetMaxImagePixels(t.Cfg.Data.MaxImagePixels)
	var sample []string
	for _, im := range t.TrainDS.Images[:min(len(t.TrainDS.Images), 16)] {
		if _, err := os.Stat(im.Path); err == nil {
			sample = nil
			break
		}
		sample = append(sample, im.Path)
	}
	if len(sample) > 0 {
		return fmt.Errorf("none of the first %d images of %s is in %s (e.g. %s is missing): check data.train.images",
			len(sample), trainAnn, trainImgs, sample[0])
	}
	if t.ValAnn == "" {
		return nil
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ds, err := data.LoadCOCO(t.ValAnn, t.ValImgs, data.COCOOptions{Logger: quiet})
	if err != nil {
		return fmt.Errorf("val split: %w", err)
	}
	if _, err := cocoeval.LoadGT(t.ValAnn); err != nil {
		return fmt.Errorf("val split: %w", err)
	}
	if t.Cfg.Data.Labels != "category_id" {
		if k := t.Cfg.Model.RoI.NumClasses; k != ds.NumClasses()+1 {
			return fmt.Errorf("val split %s has %d categories but model.roi_heads.num_classes is %d (background included: want %d)",
				t.ValAnn, ds.NumClasses(), k, ds.NumClasses()+1)
		}
	}
	recs := append([]data.ImageRecord(nil), ds.Images...)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	if n := t.Cfg.Train.EvalMaxImages; n > 0 && n < len(recs) {
		recs = recs[:n]
	}
	if len(recs) == 0 {
		return fmt.Errorf("val split %s: no images to evaluate", t.ValAnn)
	}
	var missing []string
	var firstErr error
	readable := 0
	for _, r := range recs {
		if _, err := os.Stat(r.Path); err != nil {
			missing = append(missing, r.Path)
			continue
		}
		if readable == 0 {
			if _, err := data.DecodeImage(r.Path); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
		}
		readable++
	}
	if readable == 0 {
		if firstErr == nil {
			firstErr = fmt.Errorf("%s is missing", missing[0])
		}
		return fmt.Errorf("val split %s: none of its %d images can be read (%v): check data.val.images", t.ValAnn, len(recs), firstErr)
	}
	if len(missing) > 0 {
		t.Log.Warn("val images missing: evaluation will leave them out", "ann", t.ValAnn, "missing", len(missing), "of", len(recs), "e.g.", missing[0])
	}
	return nil
}
