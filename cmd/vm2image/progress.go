package main

import (
	"errors"
	"io"
	"os"

	"github.com/spf13/pflag"
	"github.com/vm2image/vm2image/internal/progress"
	"golang.org/x/sys/unix"
)

// progressOptions choose how a long command shows its progress on standard error.
type progressOptions struct {
	quiet, json bool
}

func (o *progressOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "show no progress")
	fs.BoolVar(&o.json, "json-progress", false, "write progress as JSON lines on standard error (see docs/progress.md)")
}

func (o *progressOptions) check() error {
	if o.quiet && o.json {
		return usage(errors.New("--quiet and --json-progress exclude each other"))
	}
	return nil
}

// display returns the progress display for w: JSON lines with --json-progress, nothing with
// --quiet, lines redrawn in place on a terminal, a plain line every few seconds otherwise.
func (o *progressOptions) display(w io.Writer) *progress.Display {
	return progress.New(w, o.mode(w))
}

// mode is the progress mode the flags and w choose.
func (o *progressOptions) mode(w io.Writer) progress.Mode {
	switch {
	case o.json:
		return progress.JSON
	case o.quiet:
		return progress.Quiet
	}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return progress.Term
	}
	return progress.Plain
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// closeProgress draws a display's last state and stops it (p may be any convert.Progress).
func closeProgress(p any) {
	if c, ok := p.(interface{ Close() }); ok {
		c.Close()
	}
}
