// Command kdtrain trains a detector (and, with a teacher in its config,
// distils one) from a YAML configuration.
//
//	kdtrain --config configs/quickstart/faster_r18_synth.yaml [--set k=v]...
//	kdtrain --config C --resume            # the work dir's last checkpoint
//	kdtrain --config C --resume DIR        # a checkpoint or work directory (or --resume=DIR)
//	kdtrain --config C --force             # start afresh; a run in the work dir is moved aside
//	kdtrain plot WORK_DIR                  # redraw loss and AP curves
//
// SKD_CPUPROFILE=FILE writes a CPU profile of the run.
//
// Exit codes: 0 done, 1 failure while training (including a NaN loss),
// 2 bad flags, configuration or input (unknown commands, a work dir in use
// or holding a run, unreadable training images included).
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/train"
)

// usageError marks errors that exit with code 2.
type usageError struct{ error }

func main() {
	if p := os.Getenv("SKD_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			code := run(os.Args[1:], os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout)
	root.SetArgs(joinResumePath(args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	world = nil
	err := root.Execute()
	if err == nil {
		return finishWorld(nil, stderr, 0)
	}
	code := 1
	var ue usageError
	var ce *config.Error
	if errors.As(err, &ue) || errors.As(err, &ce) || errors.Is(err, data.ErrUnreadable) {
		code = 2
	}
	return finishWorld(err, stderr, code)
}

// joinResumePath turns "--resume PATH" (as the docs write it) into
// "--resume=PATH": --resume takes an optional value, which pflag only
// reads after "=", so PATH would otherwise be taken for a command. A word
// after --resume that does not start with "-" is its value (kdtrain takes
// no positional arguments).
func joinResumePath(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if a == "--resume" && i+1 < len(args) && args[i+1] != "" && !strings.HasPrefix(args[i+1], "-") {
			out = append(out, "--resume="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

func newRoot(stdout io.Writer) *cobra.Command {
	var cfgPath, resume, weights, workDir string
	var sets []string
	var printConfig, force bool
	root := &cobra.Command{
		Use:           "kdtrain --config FILE [--set key=value]... [--resume [PATH]] [--weights FILE]",
		Short:         "Train or distil a Faster R-CNN detector",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q (commands: plot; flags start with --)", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgPath == "" {
				return usageError{fmt.Errorf("--config is required")}
			}
			if workDir != "" {
				sets = append(sets, "train.work_dir="+workDir)
			}
			cfg, resolved, err := config.LoadFile(cfgPath, sets)
			if err != nil {
				return err
			}
			if printConfig {
				_, err := stdout.Write(resolved)
				return err
			}
			exts, err := hooks(cfg)
			if err != nil {
				return usageError{err}
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			w, err := joinWorld(logger)
			if err != nil {
				return err
			}
			t, err := train.New(train.Options{Config: cfg, Resolved: resolved, Resume: resume, Force: force, Weights: weights, Out: stdout, Extensions: exts, Log: logger, World: w})
			if err != nil {
				return usageError{err}
			}
			return t.Run()
		},
	}
	f := root.Flags()
	f.StringVar(&cfgPath, "config", "", "configuration file (YAML, _base_ inheritance)")
	f.StringArrayVar(&sets, "set", nil, "override a configuration value, e.g. --set solver.base_lr=0.01 (repeatable)")
	f.StringVar(&resume, "resume", "", "resume from the work dir's last checkpoint (no value) or from PATH")
	f.Lookup("resume").NoOptDefVal = "auto"
	f.StringVar(&weights, "weights", "", "initialise from a weights file (.pth or .safetensors); not with --resume")
	f.StringVar(&workDir, "work-dir", "", "override train.work_dir")
	f.BoolVar(&force, "force", false, "start a fresh run in a work dir that holds one, moving that run aside to WORK_DIR.old-TIMESTAMP")
	f.BoolVar(&printConfig, "print-config", false, "print the resolved configuration (what a run saves as WORK_DIR/config.yaml) and exit")
	root.PreRunE = func(cmd *cobra.Command, args []string) error {
		if resume != "" && weights != "" {
			return usageError{fmt.Errorf("--weights and --resume exclude each other (a resumed run has its weights)")}
		}
		if resume != "" && force {
			return usageError{fmt.Errorf("--force and --resume exclude each other (--force starts afresh)")}
		}
		return nil
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(&cobra.Command{
		Use:   "plot WORK_DIR",
		Short: "Draw loss_curves.png and ap_curves.png from WORK_DIR/metrics.jsonl",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("plot takes one argument, the work dir (got %d)", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := train.PlotWorkDir(args[0]); err != nil {
				return usageError{err}
			}
			fmt.Fprintf(stdout, "wrote %s/loss_curves.png and ap_curves.png\n", args[0])
			return nil
		},
	})
	return root
}
