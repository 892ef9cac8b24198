package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/vm2image/vm2image/internal/suggest"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/vmread"
)

// usageError is a mistake on the command line: exit code 2, as in vm2image.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

const long = `vm2image-agent runs on the VM and serves its filesystem, packages and processes to the
vm2image converter, over TLS 1.3 with a shared token (it never writes to the VM, never runs a
shell). Its first lines on stdout are machine-readable:

  vm2image-agent listening on HOST:PORT
  vm2image-agent fingerprint SHA256:<64 hex digits>   (give it to the converter's --fingerprint)
  token: <64 hex digits>                              (only when it generated the token)

It listens on all addresses by default: prefer --listen 127.0.0.1:49153 and an SSH tunnel from
the converter, or a firewall rule that admits only the converter. Each accepted and refused
connection is logged on stderr with the peer's address (--quiet: not).`

const examples = `  # token made on the converter and copied here (umask 077: readable by root only)
  vm2image-agent --token-file /run/vm2image/token --listen 127.0.0.1:49153

  # outliving the SSH session, stopped with: systemctl stop vm2image-agent
  systemd-run --unit vm2image-agent /usr/local/bin/vm2image-agent --token-file /run/vm2image/token

  # a generated token, printed on the third line
  vm2image-agent --listen 10.0.0.5:49153`

// flagSet declares the agent's flags into o.
func flagSet(o *options) *pflag.FlagSet {
	fs := pflag.NewFlagSet("vm2image-agent", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed by execute, once
	fs.SortFlags = false
	fs.StringVar(&o.listen, "listen", fmt.Sprintf("0.0.0.0:%d", proto.DefaultPort), "address to listen on (port 0 picks a free port); 127.0.0.1:PORT with an SSH tunnel keeps it off the network")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the shared token, at least 128 bits (make one with: head -c 32 /dev/urandom | base64); absent: generate one and print it")
	fs.StringVar(&o.root, "root", "/", "serve this directory as if it were /")
	fs.Int64Var(&o.maxRate, "max-rate", 0, "limit streamed data to this many bytes per second (0: no limit)")
	fs.IntVar(&o.maxConns, "max-conns", 16, "concurrent connections")
	fs.DurationVar(&o.idle, "idle-timeout", 10*time.Minute, "close connections idle for this long")
	fs.BoolVar(&o.quiet, "quiet", false, "do not log per-connection events")
	fs.BoolVar(&o.plaintext, "insecure-plaintext", false, "serve plain TCP without TLS: anyone on the path reads the VM's files and can take over the session (the converter needs --insecure-plaintext too)")
	fs.BoolP("help", "h", false, "print this help and exit")
	fs.Bool("version", false, "print the version and exit")
	return fs
}

// help is what -h and --help print, laid out as vm2image's (cobra's) help is.
func help(fs *pflag.FlagSet) string {
	return long + "\n\nUsage:\n  vm2image-agent [flags]\n  vm2image-agent version\n\nExamples:\n" + examples +
		"\n\nFlags:\n" + fs.FlagUsages()
}

// versionLine is what --version and the version command print, as vm2image does.
func versionLine() string {
	return fmt.Sprintf("vm2image-agent %s (protocol %d, %s %s/%s)", vmread.Version, proto.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// commands are the agent's subcommands (besides serving, which takes flags only).
var commands = []string{"version", "help"}

// parse reads the command line into o and says what to do: "serve", "help" or "version".
// pflag, not cobra: cobra (text/template and its reflection) would add 2 MB to the agent,
// over its size budget; the conventions are vm2image's all the same.
func parse(args []string, o *options) (fs *pflag.FlagSet, what string, err error) {
	fs = flagSet(o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return fs, "help", nil
		}
		msg := err.Error()
		if hint := suggest.Flag(fs, err); hint != "" {
			msg += "; " + hint
		}
		return fs, "", &usageError{fmt.Errorf("%s (see 'vm2image-agent --help')", msg)}
	}
	if h, _ := fs.GetBool("help"); h {
		return fs, "help", nil
	}
	if v, _ := fs.GetBool("version"); v {
		return fs, "version", nil
	}
	switch rest := fs.Args(); {
	case len(rest) == 0:
		return fs, "serve", nil
	case len(rest) == 1 && slices.Contains(commands, rest[0]):
		return fs, rest[0], nil
	case len(rest) > 1 && slices.Contains(commands, rest[0]):
		return fs, "", &usageError{fmt.Errorf("%s: unexpected argument %q (see 'vm2image-agent --help')", rest[0], rest[1])}
	default:
		msg := fmt.Sprintf("unknown command %q for \"vm2image-agent\" (the agent takes flags only)", rest[0])
		if s := suggest.Closest(rest[0], commands); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return fs, "", &usageError{fmt.Errorf("%s (see 'vm2image-agent --help')", msg)}
	}
}

// execute runs the command line and returns the exit code, as vm2image maps them: 0 success
// (help and version included), 1 failure, 2 a usage mistake.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer, run func(context.Context, options, io.Writer) error) int {
	var o options
	fs, what, err := parse(args, &o)
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "vm2image-agent:", err)
		return 2
	case what == "help":
		fmt.Fprint(stdout, help(fs))
		return 0
	case what == "version":
		fmt.Fprintln(stdout, versionLine())
		return 0
	}
	if err := run(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "vm2image-agent:", err)
		return 1
	}
	return 0
}
