package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/vm2image/vm2image/pkg/experiment"
)

type experimentOptions struct {
	progressOptions
	output     string
	repeat     int
	resume     bool
	retry      bool
	keepImages bool
	verbose    bool
}

func newExperimentCmd() *cobra.Command {
	var o experimentOptions
	cmd := &cobra.Command{
		Use:   "experiment SUITE.yaml",
		Short: "Run a size and time suite of conversions and baselines",
		Long: `Experiment runs a suite: its sources (live agents, dir: and tar: sources, or fixture VMs built
from Debian's packages with debootstrap) times a matrix of settings (diff strategy, packages
layer on/off, transfer mode, compression), every cell --repeat times, plus the baselines of
every suite: the whole VM as one layer, and the 2014 pipeline (full compressed tar, rsync
--compare-dest against base+packages, tar of the result, docker build). Each run is saved as
it finishes (DIR/runs), so an interrupted suite continues with --resume (failed runs count as
finished: --retry-failed runs them again). At the end DIR gets
results.json (every run, every figure, medians and spread), results.csv, results.md (the tables of
the 2014 thesis prototype's lab journal, the baseline vm2image is measured against, one block
per VM) and plots as PNG and SVG (layers, diff, phases, transfer,
trade-off). Progress (runs done, time left) goes to standard error.`,
		Example: `  vm2image experiment experiments/bookworm.yaml -o /var/tmp/results/bookworm
  vm2image experiment experiments/all.yaml -o results --repeat 3
  vm2image experiment experiments/all.yaml -o results --resume`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExperiment(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "directory for the results (required)")
	f.IntVar(&o.repeat, "repeat", 0, "runs per cell (default: the suite's repeat, else 1)")
	f.BoolVar(&o.resume, "resume", false, "keep the runs an interrupted invocation saved in the directory and run only the others")
	f.BoolVar(&o.retry, "retry-failed", false, "with --resume, run again the runs that failed")
	f.BoolVar(&o.keepImages, "keep-images", false, "keep each conversion's image in DIR/images")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log each conversion's details")
	o.progressOptions.AddFlags(f)
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

func runExperiment(ctx context.Context, o experimentOptions, suitePath string, stdout, stderr io.Writer) error {
	if err := o.progressOptions.check(); err != nil {
		return err
	}
	suite, err := experiment.LoadSuite(suitePath)
	if err != nil {
		return err
	}
	d := o.display(stderr)
	defer d.Close()
	opts := experiment.Options{OutDir: o.output, Repeat: o.repeat, Resume: o.resume, RetryFailed: o.retry, KeepImages: o.keepImages, Progress: d.Lines("experiment", "runs"),
		AgentBinary: os.Getenv(envAgent), InitBinary: os.Getenv(envInit)}
	if o.verbose {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, "  "+format+"\n", args...) }
	}
	res, err := experiment.Run(ctx, suite, opts)
	if res != nil {
		fmt.Fprintf(stdout, "suite %s: %d runs ok, %d failed; %.1fs wall, suite overhead %.2f%% of the runs\n",
			res.Suite, res.RunsOK, res.RunsFailed, res.WallSeconds, res.OverheadPercent)
		fmt.Fprintf(stdout, "  %s\n", filepath.Join(o.output, "results.md"))
	}
	return err
}
