// Command kddata makes and inspects detection data sets.
//
//	kddata synth --out DIR --train N --val M --seed S [--size 320] [--variant hard] [--holdout K]
//	kddata stats --ann annotations/instances_val.json --images val
//	kddata coco-ann --out instances_train2017_size.json [--images 118287 --annotations 860001]
//
// Exit codes (the README's): 0 success, 1 failure while writing a data set
// (an I/O error such as a full disk), 2 bad flags, arguments or input
// (unknown commands, a bad annotation file, an --out directory holding
// something else).
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/data/synth"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// failedError marks exit status 1 (a failure while writing); any other
// error is exit status 2.
type failedError struct{ error }

func (e failedError) Unwrap() error { return e.error }

// run executes kddata with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "kddata: internal error: %v\n", r)
			code = 1
		}
	}()
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "kddata:", err)
	var fe failedError
	if errors.As(err, &fe) {
		return 1
	}
	return 2
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "kddata",
		Short:         "Make and inspect COCO-format detection data sets",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q (commands: synth, stats, coco-ann)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("a command is required: synth, stats or coco-ann (kddata --help)")
		},
	}
	root.AddCommand(newSynth(), newStats(), newCOCOAnn())
	return root
}

// ioFailure reports whether err comes from the file system (a failed
// write, a full disk) rather than from the arguments.
func ioFailure(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &errno)
}

func newSynth() *cobra.Command {
	var o synth.Options
	var out string
	cmd := &cobra.Command{
		Use:   "synth",
		Short: "Generate the synthetic shapes data set (COCO format) into --out",
		Long: `Generate the synthetic shapes data set: JPEG images in DIR/train and DIR/val,
annotations in DIR/annotations/instances_{train,val}.json. Five classes
(circle, square, triangle, ring, cross), small/medium/large objects, crowd
clusters. --variant hard: 16 classes (circle, square, triangle, cross, each
plain, notched, striped or dotted), clutter, occlusion, object sizes 12 to
200 pixels. --holdout N adds DIR/holdout: a held-out part of the training
stream (training images N_train+1..N_train+N) for tuning. The same seed gives identical files. If DIR already holds a set made
with the same options nothing is done; a directory holding anything else is
refused.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if o.Sizes == "coco" && !cmd.Flags().Changed("size") {
				o.Size = 640
			}
			start := time.Now()
			if err := synth.Ensure(out, o); err != nil {
				if ioFailure(err) {
					return failedError{err}
				}
				return err
			}
			fmt.Printf("synthetic set ready in %s (train %d, val %d, holdout %d, seed %d, size %d, variant %q) in %s\n",
				out, o.Train, o.Val, o.Holdout, o.Seed, o.Size, o.Variant, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "output directory")
	f.IntVar(&o.Train, "train", 2000, "number of training images")
	f.IntVar(&o.Val, "val", 200, "number of validation images")
	f.Int64Var(&o.Seed, "seed", 1, "random seed")
	f.IntVar(&o.Size, "size", 320, "image width and height in pixels (with --sizes coco: the long side, default 640)")
	f.StringVar(&o.Variant, "variant", "", `"hard": 16 fine-detail classes, clutter, occlusion, sizes 12-200 px (the distillation study's set)`)
	f.IntVar(&o.Holdout, "holdout", 0, "images of a held-out training split (DIR/holdout), for tuning without the val split")
	f.StringVar(&o.Sizes, "sizes", "", `"coco": COCO-like image shapes and aspect ratios instead of squares`)
	f.Float64Var(&o.CrowdProb, "crowd-prob", 0.2, "probability of a crowd cluster per image (negative: none)")
	f.IntVar(&o.Quality, "quality", 92, "JPEG quality")
	f.IntVar(&o.Workers, "workers", 0, "rendering goroutines (0: all CPUs); does not change the output")
	return cmd
}

func newCOCOAnn() *cobra.Command {
	var o synth.AnnotationOptions
	var out string
	cmd := &cobra.Command{
		Use:   "coco-ann",
		Short: "Write a COCO-size instances JSON (train2017's counts and structure, random values) to --out",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if o.Images < 1 || o.Annotations < 0 {
				return fmt.Errorf("--images must be >= 1 and --annotations >= 0 (got %d, %d)", o.Images, o.Annotations)
			}
			start := time.Now()
			tmp, err := os.CreateTemp(filepath.Dir(out), ".coco-ann-*")
			if err != nil {
				return failedError{err}
			}
			defer os.Remove(tmp.Name())
			if err := synth.WriteCOCOSizeAnnotations(tmp, o); err != nil {
				tmp.Close()
				return failedError{fmt.Errorf("writing %s: %w", out, err)}
			}
			if err := tmp.Close(); err != nil {
				return failedError{err}
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return failedError{err}
			}
			st, err := os.Stat(out)
			if err != nil {
				return failedError{err}
			}
			fmt.Printf("%s: %.0f MB in %s\n", out, float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "output JSON file")
	f.IntVar(&o.Images, "images", 118287, "number of images")
	f.IntVar(&o.Annotations, "annotations", 860001, "number of annotations")
	f.Int64Var(&o.Seed, "seed", 1, "random seed")
	return cmd
}

func newStats() *cobra.Command {
	var ann, images string
	var filter bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Load a COCO instances file and print what it holds",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ann == "" {
				return fmt.Errorf("--ann is required")
			}
			ds, err := data.LoadCOCO(ann, images, data.COCOOptions{FilterEmpty: filter,
				Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
			if err != nil {
				return err
			}
			perLabel := make([]int, ds.NumClasses()+1)
			crowd := 0
			for _, im := range ds.Images {
				for _, a := range im.Annotations {
					if a.IsCrowd {
						crowd++
					} else {
						perLabel[a.Label]++
					}
				}
			}
			fmt.Printf("%s: %d images, %d categories, %d crowd boxes, %d invalid boxes dropped\n",
				ann, len(ds.Images), ds.NumClasses(), crowd, ds.Stats.InvalidBoxes)
			for l := 1; l <= ds.NumClasses(); l++ {
				fmt.Printf("  label %2d  id %4d  %-20s %d boxes\n", l, ds.LabelToCatID[l], ds.CategoryName(l), perLabel[l])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ann, "ann", "", "COCO instances JSON file")
	f.StringVar(&images, "images", "", "image directory")
	f.BoolVar(&filter, "filter-empty", false, "drop images without training targets")
	return cmd
}

// noArgs refuses positional arguments, naming the first.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments (got %q); flags start with --", cmd.Name(), args[0])
	}
	return nil
}
