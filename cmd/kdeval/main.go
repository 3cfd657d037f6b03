// Command kdeval evaluates COCO box detections with pycocotools' exact
// COCOeval semantics (package cocoeval).
//
//	kdeval --ann instances_val2017.json --results dets.json [--json metrics.json]
//
// prints pycocotools' 12-line summary and a per-class AP table; --json writes
// {"AP": ..., ..., "ARl": ..., "per_class": {"name": AP, ...}}. Exit status:
// 0 success, 2 bad flags or bad input files, 1 when the output cannot be
// written.
//
// Layout for further modes: the command resolves a source of detections
// (today only a results file, in evaluateFiles) into a GT dataset plus
// []cocoeval.Detection, then evaluate and report do the rest. A model mode
// (--config --checkpoint) only needs to produce detections in memory and call
// the same two functions.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/skd-go/skd/cocoeval"
	"github.com/spf13/cobra"
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
}

// run executes the command with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	var o options
	cmd := &cobra.Command{
		Use:   "kdeval --ann GT.json --results DETS.json [--json OUT.json]",
		Short: "COCO bbox evaluation, identical to pycocotools COCOeval",
		Long: "kdeval evaluates COCO-format box detections against COCO instances annotations,\n" +
			"reproducing pycocotools' COCOeval (iouType bbox) number for number.",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.Execute(); err != nil {
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
