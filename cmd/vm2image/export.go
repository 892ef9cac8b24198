package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/vm2image/vm2image/internal/units"
)

type exportOptions struct {
	sourceOptions
	progressOptions
	output   string
	excludes []string
}

func newExportCmd() *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export SOURCE",
		Short: "Stream a VM's whole filesystem as one tar archive",
		Long: `Export streams the source's whole filesystem (pseudo and network filesystems left out, /proc,
/sys, /dev and /run kept as empty directories) into an uncompressed tar archive: the whole VM
as one layer, the baseline every conversion is measured against. The archive is written
atomically; "-" (the default) writes to standard output, unless it is a terminal.`,
		Example: `  vm2image export 10.0.0.5:49153 --token-file token -o vm.tar
  vm2image export dir:/srv/vm-root --exclude '/var/cache/apt/*' -o - | docker import - vm:flat`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.sourceOptions.AddFlags(cmd.Flags())
	o.progressOptions.AddFlags(cmd.Flags())
	cmd.Flags().StringVarP(&o.output, "output", "o", "-", "archive to write (- for standard output)")
	cmd.Flags().StringArrayVar(&o.excludes, "exclude", nil, "anchored glob of paths to leave out (repeatable)")
	return cmd
}

// errTerminal: export refuses to write a tar archive to a terminal.
var errTerminal = errors.New("refusing to write a tar archive to a terminal: give -o FILE or redirect standard output")

func runExport(ctx context.Context, o exportOptions, spec string, stdout, stderr io.Writer) error {
	if err := o.sourceOptions.check(); err != nil {
		return err
	}
	if err := o.progressOptions.check(); err != nil {
		return err
	}
	if err := checkSourceSpec(spec); err != nil {
		return err
	}
	if o.output == "-" {
		if f, ok := stdout.(*os.File); ok && isTerminal(f) {
			return usage(errTerminal)
		}
	} else if err := checkOutputDir("-o", o.output); err != nil {
		return err
	}
	src, err := o.open(ctx, spec)
	if err != nil {
		return err
	}
	defer src.Close()
	start := time.Now()
	n, res, err := exportTo(ctx, src, o, stdout, stderr)
	if err != nil {
		return fmt.Errorf("exporting %s: %w", spec, err)
	}
	el := time.Since(start)
	wire := ""
	if hasWire(spec) {
		wire = fmt.Sprintf("; %s over the wire", units.IEC(res.wire))
	}
	fmt.Fprintf(stderr, "exported %d entries, %s of tar in %s (%s/s)%s; %d problems\n",
		res.Stats.Entries, units.IEC(n), el.Round(time.Millisecond), units.IEC(int64(float64(n)/max(el.Seconds(), 1e-9))), wire, res.ProblemsTotal)
	for _, p := range res.Problems {
		fmt.Fprintf(stderr, "  %s: %s\n", p.Path, p.Err)
	}
	return nil
}

// writeAtomic writes through fn to path via a temporary file in the same directory renamed into
// place on success, so a failed run leaves nothing half-written; "-" writes to stdout.
func writeAtomic(path string, stdout io.Writer, fn func(io.Writer) (int64, error)) (int64, error) {
	if path == "-" {
		return fn(stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return 0, err
	}
	n, err := fn(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return n, err
	}
	return n, nil
}
