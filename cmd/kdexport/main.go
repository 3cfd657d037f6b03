// Command kdexport writes a trained detector as an ONNX model (see package
// export for its inputs and outputs), and prepares inputs for it and
// compares its detections with kddetect's (scripts/onnx_check.sh).
//
//	kdexport --config C.yaml --weights W --out model.onnx [--opset 17] [--set k=v]...
//	kdexport inputs --config C.yaml --images DIR|FILE... --out DIR [--set k=v]...
//	kdexport compare REFERENCE.json OTHER.json
//
// --weights takes what kddetect takes (the project's safetensors weights,
// e.g. a distillation run's student_final.safetensors, and torchvision .pth
// state dicts). The model is written to a temporary file and renamed, so a
// failed export leaves no file.
//
// `inputs` writes, for each image, the resized RGB tensor the model takes
// (the resize stays outside the graph) and a manifest.json, in kddetect's
// image order. `compare` matches two COCO results files (same image and
// category, IoU >= 0.999, |score difference| <= 1e-4) and fails unless 99%
// of the detections match.
//
// Exit status: 0 success; 1 failure while writing, or compare below the
// tolerance; 2 bad flags, config, weights, an unsupported model part, or
// unreadable input.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/export"
	"github.com/skd-go/skd/infer"
)

const (
	exitOK     = 0
	exitFailed = 1
	exitInput  = 2
)

// failedError marks exit status 1.
type failedError struct{ error }

func (e failedError) Unwrap() error { return e.error }

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "kdexport: internal error: %v\n", r)
			code = exitFailed
		}
	}()
	var cfgPath, weights, out string
	var opset int
	var sets []string
	root := &cobra.Command{
		Use:   "kdexport --config C.yaml --weights W --out model.onnx",
		Short: "Export a trained Faster R-CNN to ONNX",
		Long: "kdexport writes the detector, end to end from the resized image to boxes, scores and\n" +
			"labels in original pixels, as an ONNX model (inputs: image float32 [1,3,H,W] RGB 0..255,\n" +
			"orig_size int64 [2]; outputs: boxes, scores, labels as kddetect gives them).",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return exportModel(cfgPath, weights, out, opset, sets, stdout, stderr)
		},
	}
	f := root.Flags()
	f.StringVar(&cfgPath, "config", "", "model configuration YAML (required)")
	f.StringVar(&weights, "weights", "", "weights: a safetensors checkpoint or a torchvision .pth state dict (required)")
	f.StringVar(&out, "out", "", "ONNX file to write (required)")
	f.IntVar(&opset, "opset", export.DefaultOpset, fmt.Sprintf("ONNX opset (%d to %d)", export.MinOpset, export.MaxOpset))
	f.StringArrayVar(&sets, "set", nil, "config override key=value (repeatable)")

	var inImages []string
	var inOut string
	var inSets []string
	var inConfig string
	inputs := &cobra.Command{
		Use:           "inputs --config C.yaml --images DIR|FILE... --out DIR",
		Short:         "Write the resized input tensors and a manifest for the ONNX model",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return prepare(inConfig, append(inImages, args...), inOut, inSets, stdout)
		},
	}
	fi := inputs.Flags()
	fi.StringVar(&inConfig, "config", "", "model configuration YAML (required: input.min_size_test, input.max_size, labels)")
	fi.StringArrayVar(&inImages, "images", nil, "an image file or a directory of .jpg/.jpeg/.png files (repeatable)")
	fi.StringVar(&inOut, "out", "", "directory to write (required)")
	fi.StringArrayVar(&inSets, "set", nil, "config override key=value (repeatable)")

	compare := &cobra.Command{
		Use:           "compare REFERENCE.json OTHER.json",
		Short:         "Match two COCO results files (IoU >= 0.999, |dscore| <= 1e-4, 99% of detections)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return compareFiles(args[0], args[1], stdout)
		},
	}
	root.AddCommand(inputs, compare)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "kdexport:", err)
		var fe failedError
		if errors.As(err, &fe) {
			return exitFailed
		}
		return exitInput
	}
	return exitOK
}

func exportModel(cfgPath, weights, out string, opset int, sets []string, stdout, stderr io.Writer) error {
	switch {
	case cfgPath == "":
		return errors.New("--config is required")
	case weights == "":
		return errors.New("--weights is required")
	case out == "":
		return errors.New("--out is required")
	}
	if opset < export.MinOpset || opset > export.MaxOpset {
		return fmt.Errorf("--opset %d: supported are %d to %d", opset, export.MinOpset, export.MaxOpset)
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return fmt.Errorf("--out %s: the directory %s does not exist", out, filepath.Dir(out))
	}
	cfg, _, err := config.LoadFile(cfgPath, sets)
	if err != nil {
		return err
	}
	if _, err := os.Stat(weights); err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	det, rep, err := infer.LoadModel(cfg, weights)
	if err != nil {
		return err
	}
	if rep != nil && len(rep.Unexpected) > 0 {
		fmt.Fprintf(stderr, "kdexport: note: %d keys of %s are not used by the model\n", len(rep.Unexpected), weights)
	}
	m, err := export.Build(det.Describe(), exportOptions(cfg, opset, fmt.Sprintf("config %s, weights %s", cfgPath, weights)))
	if err != nil {
		return err
	}
	if err := export.WriteFile(out, m); err != nil {
		return failedError{err}
	}
	st, _ := os.Stat(out)
	size := int64(0)
	if st != nil {
		size = st.Size()
	}
	fmt.Fprintf(stdout, "wrote %s (opset %d, %d nodes, %.1f MB); resize images outside the model: shorter side %d, longer at most %d (kdexport inputs does it)\n",
		out, opset, len(m.Graph.Node), float64(size)/1e6, cfg.Input.MinSizeTest, cfg.Input.MaxSize)
	return nil
}

// exportOptions maps a configuration onto the exporter's options.
func exportOptions(cfg *config.File, opset int, doc string) export.Options {
	labels := infer.LabelsFromConfig(cfg)
	o := export.Options{Opset: opset, Format: cfg.Input.Format, SizeDivisible: cfg.Input.SizeDivisible,
		MinSizeTest: cfg.Input.MinSizeTest, MaxSize: cfg.Input.MaxSize, Doc: doc}
	o.CategoryIDs, o.ClassNames = labelTables(labels, cfg.Model.RoI.NumClasses)
	return o
}

// labelTables lists category ids and names by label (-1 / "" where none).
func labelTables(l infer.Labels, numClasses int) ([]int64, []string) {
	ids := make([]int64, numClasses)
	names := make([]string, numClasses)
	for i := 0; i < numClasses; i++ {
		ids[i] = l.CategoryID(i)
		names[i] = l.Name(i)
	}
	return ids, names
}

func prepare(cfgPath string, images []string, out string, sets []string, stdout io.Writer) error {
	switch {
	case cfgPath == "":
		return errors.New("--config is required")
	case len(images) == 0:
		return errors.New("--images is required")
	case out == "":
		return errors.New("--out is required")
	}
	cfg, _, err := config.LoadFile(cfgPath, sets)
	if err != nil {
		return err
	}
	paths, err := infer.CollectImages(images)
	if err != nil {
		return err
	}
	ids, _ := labelTables(infer.LabelsFromConfig(cfg), cfg.Model.RoI.NumClasses)
	m, err := export.PrepareInputs(paths, cfg.Input.MinSizeTest, cfg.Input.MaxSize, ids, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d images -> %s/manifest.json\n", len(m.Images), out)
	return nil
}

func compareFiles(refPath, gotPath string, stdout io.Writer) error {
	ref, err := export.ReadResults(refPath)
	if err != nil {
		return err
	}
	got, err := export.ReadResults(gotPath)
	if err != nil {
		return err
	}
	c := export.Compare(ref, got)
	fmt.Fprintln(stdout, c)
	for _, u := range c.Unmatched {
		fmt.Fprintln(stdout, "  unmatched:", u)
	}
	if !c.OK() {
		return failedError{fmt.Errorf("%s and %s differ: %.2f%% matched, want >= %.0f%%", refPath, gotPath, 100*c.Fraction(), 100*export.MatchFraction)}
	}
	return nil
}
