// Command kddetect runs a trained detector on images and writes COCO
// results, optionally drawing the detections.
//
//	kddetect --config C.yaml --weights W --images DIR|FILE [--images ...] [FILE...]
//	         --out results.json [--score-thresh T] [--vis DIR] [--vis-thresh 0.5]
//	         [--ann ANN.json] [--batch-size N] [--workers N] [--set k=v]... [--quiet] [-v]
//
// --weights takes the project's safetensors checkpoints and torchvision
// .pth state dicts (detected from the bytes). Directories are scanned (not
// recursively) for .jpg, .jpeg and .png files; the images are processed in
// sorted path order. image_id is the image's id in --ann (matched by base
// file name) when given, else its position in that order, from 1.
// category_id comes from --ann's categories (contiguous labels) when given,
// else from the config's data.labels (see infer.LabelsFromConfig).
//
// Exit status: 0 success; 1 some images could not be processed (they are
// listed at the end, the others are written) or an output could not be
// written; 2 bad flags, config, weights or annotation file.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/infer"
	"github.com/skd-go/skd/train"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // some images failed, or an output could not be written
	exitInput  = 2 // bad flags, config, weights or annotations
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// options are the command-line settings.
type options struct {
	config      string
	weights     string
	images      []string
	out         string
	scoreThresh float32
	vis         string
	visThresh   float32
	ann         string
	batchSize   int
	workers     int
	sets        []string
	quiet       bool
	verbose     bool
	ignoreEXIF  bool
}

// failedError marks an exit status of 1 (images failed, output not
// written); any other error is exit status 2.
type failedError struct{ error }

func (e failedError) Unwrap() error { return e.error }

// run executes the command with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "kddetect: internal error: %v\n", r)
			code = exitInput
		}
	}()
	var o options
	cmd := &cobra.Command{
		Use:   "kddetect --config C.yaml --weights W --images DIR|FILE... --out results.json",
		Short: "Detect objects in images with a trained Faster R-CNN",
		Long: "kddetect runs a detector on JPEG/PNG images and writes COCO results JSON\n" +
			"([{image_id, file_name, category_id, bbox [x,y,w,h], score}], original pixels);\n" +
			"with --vis it also draws the detections into one PNG per image.",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.images = append(o.images, args...)
			return detect(&o, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "model configuration YAML (required)")
	f.StringVar(&o.weights, "weights", "", "weights: a safetensors checkpoint or a torchvision .pth state dict (required)")
	f.StringArrayVar(&o.images, "images", nil, "an image file or a directory of .jpg/.jpeg/.png files (repeatable; extra arguments are images too)")
	f.StringVar(&o.out, "out", "", "COCO results JSON to write")
	f.Float32Var(&o.scoreThresh, "score-thresh", 0, "keep detections with score >= this (0: all the model returns)")
	f.StringVar(&o.vis, "vis", "", "directory for one PNG per image with the detections drawn")
	f.Float32Var(&o.visThresh, "vis-thresh", 0.5, "draw only detections with score >= max(this, --score-thresh)")
	f.StringVar(&o.ann, "ann", "", "COCO annotation file giving image ids (by base file name) and category ids")
	f.IntVar(&o.batchSize, "batch-size", 1, "images per forward pass")
	f.IntVar(&o.workers, "workers", 0, "image decoding goroutines (0: up to 4)")
	f.StringArrayVar(&o.sets, "set", nil, "config override key=value (repeatable)")
	f.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print one line per image")
	f.BoolVar(&o.ignoreEXIF, "ignore-exif", false, "use pixels as stored, without the JPEG EXIF orientation")
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(stderr, "kddetect:", err)
		var fe failedError
		if errors.As(err, &fe) {
			return exitFailed
		}
		return exitInput
	}
	return exitOK
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

func detect(o *options, stdout, stderr io.Writer) error {
	switch {
	case o.config == "":
		return errors.New("--config is required")
	case o.weights == "":
		return errors.New("--weights is required")
	case len(o.images) == 0:
		return errors.New("--images is required (a file or a directory)")
	case o.out == "" && o.vis == "":
		return errors.New("--out (results JSON) or --vis (drawings) is required")
	case o.batchSize < 1:
		return fmt.Errorf("--batch-size %d: must be >= 1", o.batchSize)
	case !(o.scoreThresh >= 0 && o.scoreThresh <= 1): // NaN fails too
		return fmt.Errorf("--score-thresh %v: must be in [0, 1]", o.scoreThresh)
	case !(o.visThresh >= 0 && o.visThresh <= 1):
		return fmt.Errorf("--vis-thresh %v: must be in [0, 1]", o.visThresh)
	case o.workers < 0:
		return fmt.Errorf("--workers %d: must be >= 0", o.workers)
	}
	cfg, _, err := config.LoadFile(o.config, o.sets)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.weights); err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	// a checkpoint directory or a work dir stands for its weights file
	w, err := train.ResolveWeights(o.weights)
	if err != nil {
		if st, _ := os.Stat(o.weights); st != nil && st.IsDir() && !errors.Is(err, train.ErrCorrupt) {
			return fmt.Errorf("--weights %s is a directory without model.safetensors or a last_checkpoint naming one: %w", o.weights, err)
		}
		return err
	}
	o.weights = w
	data.SetMaxImagePixels(cfg.Data.MaxImagePixels)
	paths, err := infer.CollectImages(o.images)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return errors.New("no images given")
	}
	var bad []infer.ImageError
	refs := make([]infer.ImageRef, 0, len(paths))
	var labels infer.Labels
	if o.ann != "" {
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		ds, err := data.LoadCOCO(o.ann, "", data.COCOOptions{Logger: quiet})
		if err != nil {
			return fmt.Errorf("--ann: %w", err)
		}
		if k := cfg.Model.RoI.NumClasses; k != ds.NumClasses()+1 {
			return fmt.Errorf("--ann %s has %d categories but the model has %d classes (model.roi_heads.num_classes=%d counts the background)",
				o.ann, ds.NumClasses(), k-1, k)
		}
		labels = infer.LabelsFromDataset(ds)
		byName := map[string][]data.ImageRecord{}
		for _, im := range ds.Images {
			b := filepath.Base(im.FileName)
			byName[b] = append(byName[b], im)
		}
		for _, p := range paths {
			recs := byName[filepath.Base(p)]
			switch len(recs) {
			case 0:
				bad = append(bad, infer.ImageError{Path: p, Err: fmt.Errorf("not listed in %s", o.ann)})
			case 1:
				refs = append(refs, infer.ImageRef{Path: p, ID: recs[0].ID, FileName: recs[0].FileName, Width: recs[0].Width, Height: recs[0].Height})
			default:
				bad = append(bad, infer.ImageError{Path: p, Err: fmt.Errorf("%d images of %s have this base name", len(recs), o.ann)})
			}
		}
	} else {
		labels = infer.LabelsFromConfig(cfg)
		for i, p := range paths {
			refs = append(refs, infer.ImageRef{Path: p, ID: int64(i + 1)})
		}
	}
	det, rep, err := infer.LoadModel(cfg, o.weights)
	if err != nil {
		return err
	}
	if rep != nil && len(rep.Unexpected) > 0 {
		fmt.Fprintf(stderr, "kddetect: note: %d keys of %s are not used by the model (%s)\n", len(rep.Unexpected), o.weights, firstFew(rep.Unexpected, 3))
	}
	if o.vis != "" {
		if err := os.MkdirAll(o.vis, 0o755); err != nil {
			return fmt.Errorf("--vis: %w", err)
		}
	}

	var bar *progressbar.ProgressBar
	if !o.quiet && isTerminal(stderr) && len(refs) > 1 {
		bar = progressbar.NewOptions(len(refs), progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("detecting"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("img"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	start := time.Now()
	res, failed := infer.Run(det, refs, infer.Options{Transform: glue.Transform(cfg, false), BatchSize: o.batchSize,
		Workers: o.workers, ScoreThresh: o.scoreThresh, Labels: &labels, IgnoreEXIF: o.ignoreEXIF},
		func(done, total int) {
			if bar != nil {
				bar.Set(done)
			}
		})
	if bar != nil {
		bar.Finish()
	}
	elapsed := time.Since(start)
	bad = append(bad, failed...)

	ndet := 0
	for i := range res {
		ndet += len(res[i].Boxes)
		if o.verbose {
			fmt.Fprintf(stdout, "%s (id %d, %dx%d): %d detections%s\n", res[i].Path, res[i].ImageID, res[i].Width, res[i].Height,
				len(res[i].Boxes), best(&res[i], labels))
		}
	}
	var outErr error
	if o.out != "" {
		if err := infer.WriteResultsJSON(o.out, res, labels); err != nil {
			outErr = err
		}
	}
	nvis := 0
	if o.vis != "" {
		th := max(o.visThresh, o.scoreThresh)
		used := map[string]bool{}
		for i := range res {
			name := strings.TrimSuffix(filepath.Base(res[i].Path), filepath.Ext(res[i].Path))
			if used[name] {
				name = fmt.Sprintf("%s_%d", name, res[i].ImageID)
			}
			used[name] = true
			if err := writeVis(filepath.Join(o.vis, name+".png"), &res[i], labels, th, o.ignoreEXIF); err != nil {
				bad = append(bad, infer.ImageError{Path: res[i].Path, ImageID: res[i].ImageID, Err: fmt.Errorf("drawing: %w", err)})
				continue
			}
			nvis++
		}
	}

	perImage := ""
	if len(res) > 0 {
		perImage = fmt.Sprintf(", %s per image", (elapsed / time.Duration(len(res)+len(failed))).Round(time.Millisecond))
	}
	fmt.Fprintf(stdout, "%d of %d images processed, %d detections (score >= %g)%s\n",
		len(res), len(paths), ndet, o.scoreThresh, perImage)
	if o.out != "" && outErr == nil {
		fmt.Fprintf(stdout, "results: %s\n", o.out)
	}
	if o.vis != "" {
		fmt.Fprintf(stdout, "drawings: %d PNG files in %s (score >= %g)\n", nvis, o.vis, max(o.visThresh, o.scoreThresh))
	}
	if outErr != nil {
		return failedError{outErr}
	}
	if len(bad) > 0 {
		sort.SliceStable(bad, func(i, j int) bool { return bad[i].Path < bad[j].Path })
		fmt.Fprintf(stderr, "kddetect: %d images failed:\n", len(bad))
		for _, b := range bad {
			if msg := b.Err.Error(); strings.Contains(msg, b.Path) {
				fmt.Fprintf(stderr, "  %s\n", msg) // the error names the file already
			} else {
				fmt.Fprintf(stderr, "  %s: %s\n", b.Path, msg)
			}
		}
		return failedError{fmt.Errorf("%d of %d images failed", len(bad), len(paths))}
	}
	return nil
}

// best describes an image's top detection.
func best(r *infer.ImageResult, labels infer.Labels) string {
	if len(r.Scores) == 0 {
		return ""
	}
	return fmt.Sprintf(", best %s %.3f", labels.Name(r.Labels[0]), r.Scores[0])
}

// firstFew joins up to n names and says how many more there are.
func firstFew(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(" and %d more", len(s)-n)
}
