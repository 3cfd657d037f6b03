// Command kdeval evaluates COCO box detections with pycocotools' exact
// COCOeval semantics (package cocoeval).
//
//	kdeval --ann instances_val2017.json --results dets.json [--json metrics.json]
//	kdeval --config C.yaml --checkpoint CK [--max-images N] [--set k=v]... [--json metrics.json]
//
// The first form evaluates a results file. The second runs a model on its
// config's val split (glue.ValSplit, the rule training uses too:
// data.val.ann / data.val.images when set, else the synthetic set's val
// files when data.synth.dir is set, generated if missing) and
// evaluates its detections; CK is a weights file (safetensors or a
// torchvision .pth), a checkpoint directory holding model.safetensors, or
// a training work_dir whose last_checkpoint file names the checkpoint.
// Both print pycocotools' 12-line summary and a per-class AP table; --json
// writes {"AP": ..., ..., "ARl": ..., "per_class": {"name": AP, ...}}. Exit
// status: 0 success, 2 bad flags or bad input (files, config, weights), 1
// when the output cannot be written.
//
// Layout: each mode resolves its source of detections into a GT dataset
// plus []cocoeval.Detection (evaluateFiles) or directly into a result
// (evaluateModel); report does the rest.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/dist"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/infer"
	"github.com/skd-go/skd/model"
	wts "github.com/skd-go/skd/model/weights"
	"github.com/skd-go/skd/train"
)

// Exit statuses.
const (
	exitOK     = 0
	exitOutput = 1 // the output could not be written
	exitInput  = 2 // bad flags or bad input
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// outputError marks failures to write results (exit status 1); every other
// error is a usage or input error (exit status 2).
type outputError struct{ error }

func (e outputError) Unwrap() error { return e.error }

// options are the command-line settings.
type options struct {
	ann     string // COCO instances GT JSON
	results string // COCO results JSON
	jsonOut string // optional metrics JSON output
	workers int

	// model mode
	config     string
	checkpoint string
	maxImages  int
	batchSize  int
	sets       []string
	quiet      bool
	// world: model mode under mpirun (-tags mpi) shards the images over
	// the ranks (dist.go)
	world *dist.World
}

// run executes the command with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "kdeval: internal error: %v\n", r)
			code = exitInput
		}
	}()
	var o options
	cmd := &cobra.Command{
		Use:   "kdeval (--ann GT.json --results DETS.json | --config C.yaml --checkpoint CK) [--json OUT.json]",
		Short: "COCO bbox evaluation, identical to pycocotools COCOeval",
		Long: "kdeval evaluates COCO-format box detections against COCO instances annotations,\n" +
			"reproducing pycocotools' COCOeval (iouType bbox) number for number. The detections\n" +
			"come from a results file (--ann, --results) or from running a model on its\n" +
			"config's val split (--config, --checkpoint).",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.config != "" || o.checkpoint != "" {
				if o.config == "" || o.checkpoint == "" {
					return errors.New("model mode needs both --config and --checkpoint")
				}
				if o.ann != "" || o.results != "" {
					return errors.New("--ann/--results (results-file mode) cannot be combined with --config/--checkpoint (model mode)")
				}
				res, err := evaluateModel(&o, stderr)
				if err != nil {
					return err
				}
				if !o.world.IsRoot() {
					return nil // rank 0 reports
				}
				return report(res, stdout, stderr, o.jsonOut)
			}
			if o.ann == "" || o.results == "" {
				return errors.New("--ann and --results are required")
			}
			gt, dets, err := evaluateFiles(o.ann, o.results)
			if err != nil {
				return err
			}
			res, err := evaluate(gt, dets, o.workers)
			if err != nil {
				return err
			}
			return report(res, stdout, stderr, o.jsonOut)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ann, "ann", "", "COCO instances ground-truth JSON (required)")
	f.StringVar(&o.results, "results", "", "COCO detection results JSON: [{image_id, category_id, bbox, score}] (required)")
	f.StringVar(&o.jsonOut, "json", "", "write the 12 metrics and per-class AP to this JSON file")
	f.IntVar(&o.workers, "workers", 0, "goroutines for the evaluation (0: all cores); results do not depend on it")
	f.StringVar(&o.config, "config", "", "model mode: the model's configuration YAML")
	f.StringVar(&o.checkpoint, "checkpoint", "", "model mode: weights file, checkpoint directory (model.safetensors) or work_dir (last_checkpoint)")
	f.IntVar(&o.maxImages, "max-images", 0, "model mode: evaluate the first N val images in id order (0: all)")
	f.IntVar(&o.batchSize, "batch-size", 1, "model mode: images per forward pass")
	f.StringArrayVar(&o.sets, "set", nil, "model mode: config override key=value (repeatable)")
	f.BoolVar(&o.quiet, "quiet", false, "model mode: no progress bar")
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	defer o.leaveWorld()
	if err := cmd.Execute(); err != nil {
		if o.silent(err) {
			return exitInput
		}
		fmt.Fprintln(stderr, "kdeval:", err)
		var oe outputError
		if errors.As(err, &oe) {
			return exitOutput
		}
		return exitInput
	}
	return exitOK
}

// evaluateFiles is the annotation + results-file mode: it loads the ground
// truth and the detections (pycocotools loadRes rules).
func evaluateFiles(annPath, resultsPath string) (*cocoeval.Dataset, []cocoeval.Detection, error) {
	gt, err := cocoeval.LoadGT(annPath)
	if err != nil {
		return nil, nil, err
	}
	dets, err := cocoeval.LoadResults(gt, resultsPath)
	if err != nil {
		return nil, nil, err
	}
	return gt, dets, nil
}

// evaluate runs the COCO evaluation with pycocotools' default parameters.
func evaluate(gt *cocoeval.Dataset, dets []cocoeval.Detection, workers int) (*cocoeval.Result, error) {
	p := cocoeval.DefaultParams()
	p.Workers = workers
	return cocoeval.Evaluate(gt, dets, p)
}

// report prints the summary and the per-class table to stdout, warnings to
// stderr, and writes the metrics JSON when jsonPath is set.
func report(res *cocoeval.Result, stdout, stderr io.Writer, jsonPath string) error {
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "kdeval: warning:", w)
	}
	if _, err := fmt.Fprint(stdout, res.Summary(), "\n", res.PerClassTable()); err != nil {
		return outputError{err}
	}
	if jsonPath == "" {
		return nil
	}
	data, err := metricsJSON(res)
	if err != nil {
		return outputError{err}
	}
	if err := os.WriteFile(jsonPath, data, 0o644); err != nil {
		return outputError{err}
	}
	return nil
}

// metricsJSON encodes the 12 stats in pycocotools' order, then "per_class"
// (category name -> AP at IoU .50:.95, area all, 100 detections; -1 for a
// category without GT). A name shared by several categories, or empty, is
// written as "name (id N)".
func metricsJSON(res *cocoeval.Result) ([]byte, error) {
	count := map[string]int{}
	for _, c := range res.PerClass {
		count[c.Name]++
	}
	perClass := make(map[string]float64, len(res.PerClass))
	for _, c := range res.PerClass {
		key := c.Name
		if count[key] > 1 || key == "" {
			key = fmt.Sprintf("%s (id %d)", c.Name, c.ID)
		}
		perClass[key] = c.AP
	}
	buf := []byte("{\n")
	for i, name := range cocoeval.StatNames {
		v, err := json.Marshal(res.Stats[i])
		if err != nil {
			return nil, err
		}
		buf = fmt.Appendf(buf, "  %q: %s,\n", name, v)
	}
	pc, err := json.MarshalIndent(perClass, "  ", "  ")
	if err != nil {
		return nil, err
	}
	buf = fmt.Appendf(buf, "  \"per_class\": %s\n}\n", pc)
	return buf, nil
}

// resolveCheckpoint turns --checkpoint into a weights file: a file is used
// as is; a directory must hold model.safetensors, or be a work_dir whose
// last_checkpoint file names the checkpoint (a directory or a file,
// relative to the work_dir, to its checkpoints/ folder, or absolute).
func resolveCheckpoint(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("--checkpoint: %w", err)
	}
	if !st.IsDir() {
		return p, nil
	}
	if w := filepath.Join(p, "model.safetensors"); isFile(w) {
		return w, nil
	}
	lc := filepath.Join(p, "last_checkpoint")
	raw, err := os.ReadFile(lc)
	if err != nil {
		return "", fmt.Errorf("--checkpoint %s: a directory without model.safetensors or last_checkpoint", p)
	}
	name := strings.TrimSpace(string(raw))
	if name == "" {
		return "", fmt.Errorf("%s is empty", lc)
	}
	cands := []string{name}
	if !filepath.IsAbs(name) {
		cands = []string{filepath.Join(p, name), filepath.Join(p, "checkpoints", name), name}
	}
	for _, c := range cands {
		if isFile(c) {
			return c, nil
		}
		if w := filepath.Join(c, "model.safetensors"); isFile(w) {
			return w, nil
		}
	}
	return "", fmt.Errorf("%s names %q, but none of %s holds model.safetensors", lc, name, strings.Join(cands, ", "))
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// evaluateModel is the model mode: load the config and weights, run the
// model on the val split and evaluate.
func evaluateModel(o *options, stderr io.Writer) (*cocoeval.Result, error) {
	if o.maxImages < 0 || o.batchSize < 1 {
		return nil, fmt.Errorf("--max-images must be >= 0 and --batch-size >= 1")
	}
	cfg, _, err := config.LoadFile(o.config, o.sets)
	if err != nil {
		return nil, err
	}
	if err := o.joinWorld(); err != nil {
		return nil, err
	}
	if !o.world.IsRoot() {
		stderr = io.Discard
	}
	data.SetMaxImagePixels(cfg.Data.MaxImagePixels)
	var weights, ann, images string
	var det *model.FasterRCNN
	var rep *wts.Report
	// rank 0 first: it generates a missing synthetic set
	err = o.rootFirst(func() (err error) {
		if weights, err = resolveCheckpoint(o.checkpoint); err != nil {
			return err
		}
		if err := train.VerifyWeightsFile(weights); err != nil {
			return err
		}
		val, ok, err := glue.ValSplit(cfg, func(m string) { fmt.Fprintln(stderr, "kdeval:", m) })
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("config %s has no data.val.ann (nor data.synth.dir)", cfg.Path)
		}
		ann, images = val.Ann, val.Images
		det, rep, err = infer.LoadModel(cfg, weights)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(rep.Unexpected) > 0 {
		fmt.Fprintf(stderr, "kdeval: note: %d keys of %s are not used by the model\n", len(rep.Unexpected), weights)
	}
	fmt.Fprintf(stderr, "kdeval: evaluating %s on %s\n", weights, ann)
	var bar *progressbar.ProgressBar
	progress := func(done, total int) {
		if bar == nil && !o.quiet && isTerminal(stderr) && total > 1 {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("evaluating"),
				progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("img"),
				progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		}
		if bar != nil {
			bar.Set(done)
		}
	}
	start := time.Now()
	res, dets, err := infer.EvaluateDatasetWith(det, cfg, ann, images, infer.EvalOptions{MaxImages: o.maxImages,
		BatchSize: o.batchSize, Workers: cfg.Data.Workers, Progress: progress, World: o.world})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return nil, o.agreed(err)
	}
	fmt.Fprintf(stderr, "kdeval: %d images, %d detections in %s\n", len(res.Params.ImgIDs), len(dets), time.Since(start).Round(time.Millisecond))
	return res, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
