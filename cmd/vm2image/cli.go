package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vm2image/vm2image/internal/suggest"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/source"
)

// usageError is a mistake on the command line: exit code 2 in every command.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err: err}
}

// asUsage wraps option errors of pkg/convert (ErrInvalidOption) as usage errors.
func asUsage(err error) error {
	if errors.Is(err, convert.ErrInvalidOption) {
		return usage(err)
	}
	return err
}

// usageArgs makes every positional-argument error of cmd and its subcommands a usage error,
// and every flag error too.
func usageArgs(cmd *cobra.Command) {
	if cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
		cmd.Args, cmd.RunE = cobra.ArbitraryArgs, rootRun
	}
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usage(fmt.Errorf("%s%w (see '%s --help')", subPath(c), err, c.CommandPath()))
			}
			return nil
		}
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if hint := suggest.Flag(c.Flags(), err); hint != "" {
			err = fmt.Errorf("%w; %s", err, hint)
		}
		return usage(fmt.Errorf("%s%w (see '%s --help')", subPath(c), err, c.CommandPath()))
	})
	for _, sub := range cmd.Commands() {
		usageArgs(sub)
	}
}

// subPath is "convert: " for vm2image convert, "" for the root (its name starts each message).
func subPath(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ") + ": "
}

// rootRun prints the help without arguments and refuses an unknown command (with cobra's
// suggestions) as a usage error.
func rootRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	cmd.SuggestionsMinimumDistance = 2
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usage(fmt.Errorf("%s (see '%s --help')", msg, cmd.CommandPath()))
}

// checkSourceSpec refuses, before any connection, a source that names nothing vm2image can
// read, and a dir: or tar: source whose path does not exist.
func checkSourceSpec(spec string) error {
	for _, p := range []string{"dir:", "tar:", "disk:"} {
		if path, ok := strings.CutPrefix(spec, p); ok {
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("source %s: %w", spec, noSuchFile(path, err))
			}
			return nil
		}
	}
	hostPort := strings.TrimPrefix(source.WithDefaultPort(spec), "agent://")
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		return usage(fmt.Errorf("unknown source %q: want HOST[:PORT] (default port %d), agent://HOST[:PORT], dir:PATH, tar:PATH or disk:PATH", spec, proto.DefaultPort))
	}
	return nil
}

// hasWire says whether bytes from spec cross a network (an agent), unlike dir:, tar: and disk:.
func hasWire(spec string) bool {
	return !strings.HasPrefix(spec, "dir:") && !strings.HasPrefix(spec, "tar:") && !strings.HasPrefix(spec, "disk:")
}

// checkOutputDir checks that the file path can be created: its directory exists and is one.
func checkOutputDir(flag, path string) error {
	if path == "" || path == "-" {
		return nil
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking %s %s: %w", flag, path, noSuchFile(dir, err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("checking %s %s: %s is not a directory", flag, path, dir)
	}
	return nil
}

// noSuchFile says plainly that path does not exist.
func noSuchFile(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist", path)
	}
	return err
}
