package infer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/dist"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/model"
	"github.com/skd-go/skd/model/weights"
)

// ClassCountError says a weights file was trained for another number of
// classes than the configuration's model.roi_heads.num_classes.
type ClassCountError struct {
	Path     string
	InFile   int // rows of roi_heads.box_predictor.cls_score.weight
	InConfig int // model.roi_heads.num_classes
}

func (e *ClassCountError) Error() string {
	return fmt.Sprintf("weights %s have %d classes (roi_heads.box_predictor.cls_score.weight has %d rows, background included) "+
		"but the config has model.roi_heads.num_classes=%d; use the config the weights were trained with, or add --set model.roi_heads.num_classes=%d",
		e.Path, e.InFile, e.InFile, e.InConfig, e.InFile)
}

// clsKey is the classifier weight whose first dimension is the class count.
const clsKey = "roi_heads.box_predictor.cls_score.weight"

// LoadModel builds cfg's detector and loads a weights file into it: the
// project's safetensors checkpoints or a torchvision .pth state dict
// (detected from the bytes; a "module." prefix is stripped). A file whose
// classifier has another class count than the config gives a
// *ClassCountError; any missing parameter or shape mismatch is an error
// with the weights report's table. The returned report lists keys of the
// file the model did not use.
func LoadModel(cfg *config.File, weightsPath string) (*model.FasterRCNN, *weights.Report, error) {
	det, err := model.New(cfg.Model)
	if err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", cfg.Path, err)
	}
	sd, _, err := model.ReadStateDict(weightsPath)
	if err != nil {
		return nil, nil, err
	}
	for k, t := range sd {
		if (k == clsKey || strings.HasSuffix(k, "."+clsKey)) && len(t.Shape) == 2 && t.Shape[0] != cfg.Model.RoI.NumClasses {
			return nil, nil, &ClassCountError{Path: weightsPath, InFile: t.Shape[0], InConfig: cfg.Model.RoI.NumClasses}
		}
	}
	opts := model.LoadOptions{MatchOptions: weights.MatchOptions{StripPrefixes: []string{"module."}}}
	rep, err := model.LoadStateDict(det.Reg, sd, weightsPath, opts)
	if err != nil {
		return nil, rep, err
	}
	return det, rep, nil
}

// ToCOCO converts results to COCO detections (bbox x, y, w, h in original
// pixels) with category ids from labels. A label without a category id
// is an error.
func ToCOCO(res []ImageResult, labels Labels) ([]cocoeval.Detection, error) {
	var out []cocoeval.Detection
	for _, r := range res {
		for j, b := range r.Boxes {
			cat := labels.CategoryID(r.Labels[j])
			if cat < 0 {
				return nil, fmt.Errorf("%s: label %d has no category id (the model has more classes than the label mapping)", r.FileName, r.Labels[j])
			}
			x1, y1, x2, y2 := float64(b[0]), float64(b[1]), float64(b[2]), float64(b[3])
			out = append(out, cocoeval.Detection{ImageID: r.ImageID, CategoryID: cat,
				BBox: [4]float64{x1, y1, x2 - x1, y2 - y1}, Score: float64(r.Scores[j])})
		}
	}
	return out, nil
}

// EvalOptions configure EvaluateDatasetWith.
type EvalOptions struct {
	// MaxImages evaluates the first MaxImages images in id order (0: all).
	MaxImages int
	// BatchSize and Workers as in Options (defaults 1 and up to 4).
	BatchSize, Workers int
	// Progress is called after each image.
	Progress func(done, total int)
	// World, with more than one rank, evaluates data-parallel: every rank
	// runs its contiguous shard of the images, rank 0 gathers the
	// detections and evaluates them (the same numbers as one process), and
	// every rank gets the summary (see EvaluateDatasetWith). Every rank
	// must call it.
	World *dist.World
}

// EvaluateDataset runs det on a COCO split and evaluates its detections
// with pycocotools' COCOeval rules. See EvaluateDatasetWith; this uses
// batch size 1 and cfg.Data.Workers decoding goroutines.
func EvaluateDataset(det *model.FasterRCNN, cfg *config.File, annPath, imageDir string, maxImages int) (*cocoeval.Result, []cocoeval.Detection, error) {
	return EvaluateDatasetWith(det, cfg, annPath, imageDir, EvalOptions{MaxImages: maxImages, Workers: cfg.Data.Workers})
}

// EvaluateDatasetWith loads the split (every image, with or without
// annotations), runs inference on its images in id order (the first
// opts.MaxImages when > 0) with cfg's test transform, converts the
// detections to COCO results (category ids through the dataset's
// contiguous mapping, or label == category id when data.labels is
// "category_id") and evaluates them on exactly those images. An image that
// cannot be read is left out of the evaluation and named in
// Result.Warnings; if none can be read it is an error.
func EvaluateDatasetWith(det *model.FasterRCNN, cfg *config.File, annPath, imageDir string, opts EvalOptions) (*cocoeval.Result, []cocoeval.Detection, error) {
	if opts.World != nil && opts.World.Size() > 1 {
		return evaluateDist(det, cfg, annPath, imageDir, opts)
	}
	gt, labels, refs, err := evalPrepare(det, cfg, annPath, imageDir, opts)
	if err != nil {
		return nil, nil, err
	}
	res, bad := Run(det, refs, Options{Transform: glue.Transform(cfg, false), BatchSize: opts.BatchSize,
		Workers: opts.Workers, Labels: &labels}, opts.Progress)
	return evalFinish(gt, labels, annPath, len(refs), res, bad)
}

// evalPrepare loads the split and its ground truth and lists the images
// to evaluate, in id order.
func evalPrepare(det *model.FasterRCNN, cfg *config.File, annPath, imageDir string, opts EvalOptions) (*cocoeval.Dataset, Labels, []ImageRef, error) {
	var labels Labels
	ds, err := data.LoadCOCO(annPath, imageDir, data.COCOOptions{})
	if err != nil {
		return nil, labels, nil, err
	}
	gt, err := cocoeval.LoadGT(annPath)
	if err != nil {
		return nil, labels, nil, err
	}
	if cfg.Data.Labels == "category_id" {
		labels = LabelsFromConfig(cfg)
		labels.Mode = "category_id"
	} else {
		labels = LabelsFromDataset(ds)
		if k := det.Cfg.RoI.NumClasses; k != ds.NumClasses()+1 {
			return nil, labels, nil, fmt.Errorf("%s has %d categories but the model has %d classes (model.roi_heads.num_classes=%d counts the background: set it to %d)",
				annPath, ds.NumClasses(), k-1, k, ds.NumClasses()+1)
		}
	}
	recs := append([]data.ImageRecord(nil), ds.Images...)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	if opts.MaxImages > 0 && opts.MaxImages < len(recs) {
		recs = recs[:opts.MaxImages]
	}
	if len(recs) == 0 {
		return nil, labels, nil, fmt.Errorf("%s: no images to evaluate", annPath)
	}
	refs := make([]ImageRef, len(recs))
	for i, r := range recs {
		refs[i] = ImageRef{Path: r.Path, ID: r.ID, FileName: r.FileName, Width: r.Width, Height: r.Height}
	}
	return gt, labels, refs, nil
}

// evalFinish evaluates the results of n images (bad: those that failed).
func evalFinish(gt *cocoeval.Dataset, labels Labels, annPath string, n int, res []ImageResult, bad []ImageError) (*cocoeval.Result, []cocoeval.Detection, error) {
	if len(res) == 0 {
		return nil, nil, fmt.Errorf("%s: none of %d images could be evaluated; first error: %v", annPath, n, bad[0])
	}
	dets, err := ToCOCO(res, labels)
	if err != nil {
		return nil, nil, err
	}
	p := cocoeval.DefaultParams()
	for _, r := range res {
		p.ImgIDs = append(p.ImgIDs, r.ImageID)
	}
	out, err := cocoeval.Evaluate(gt, dets, p)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range bad {
		out.Warnings = append(out.Warnings, fmt.Sprintf("image %d left out of the evaluation: %v", b.ImageID, b))
	}
	return out, dets, nil
}

// formatFloat writes v with the shortest decimal that reads back as the
// same float32 (detections are float32 numbers).
func formatFloat(v float64) string {
	return strconv.FormatFloat(float64(float32(v)), 'f', -1, 32)
}

// WriteResultsJSON writes a COCO results file: a JSON list of
// {"image_id", "file_name", "category_id", "bbox": [x, y, w, h], "score"}
// in original pixels, one detection per line, images in the order given.
// It writes a temporary file beside path, syncs it and renames it.
func WriteResultsJSON(path string, res []ImageResult, labels Labels) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriter(f)
	w.WriteString("[")
	first := true
	for _, r := range res {
		name, _ := json.Marshal(r.FileName) // a string always encodes
		for j, b := range r.Boxes {
			cat := labels.CategoryID(r.Labels[j])
			if cat < 0 {
				return fmt.Errorf("writing %s: %s: label %d has no category id", path, r.FileName, r.Labels[j])
			}
			if !first {
				w.WriteString(",")
			}
			first = false
			x1, y1, x2, y2 := float64(b[0]), float64(b[1]), float64(b[2]), float64(b[3])
			fmt.Fprintf(w, "\n{\"image_id\": %d, \"file_name\": %s, \"category_id\": %d, \"bbox\": [%s, %s, %s, %s], \"score\": %s}",
				r.ImageID, name, cat, formatFloat(x1), formatFloat(y1), formatFloat(x2-x1), formatFloat(y2-y1), formatFloat(float64(r.Scores[j])))
		}
	}
	w.WriteString("\n]\n")
	if err = w.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
