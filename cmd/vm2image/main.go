// Command vm2image turns a live Linux VM into a small, layered, runnable Docker/OCI image.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	sandbox "github.com/vm2image/vm2image/internal/sandbox"
)

// exitError carries an exit code other than 1 out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// interrupted is the cause of the context's end when a signal stopped the run.
type interrupted struct{ sig os.Signal }

func (i interrupted) Error() string {
	return "interrupted by " + unix.SignalName(i.sig.(syscall.Signal))
}

func main() {
	sandbox.Main() // a re-executed build sandbox sets itself up and never returns
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cancel(interrupted{sig})
		// A second signal does not wait for the cleanup.
		sig = <-sigs
		fmt.Fprintln(os.Stderr, "vm2image: interrupted again, exiting without cleaning up")
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
	stopProfile := startProfile()
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	signal.Stop(sigs)
	os.Exit(code)
}

// execute runs the command line args through the root command and returns the exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	return exitCode(ctx, err, stderr)
}

// exitCode maps a command's error to the process exit code, in one place, and prints it in one
// line: 0 success; 1 failure (verify: different); 2 usage error (verify: any error);
// 128+N interrupted by signal N (130 for Ctrl-C).
func exitCode(ctx context.Context, err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var sig interrupted
	if errors.As(context.Cause(ctx), &sig) {
		fmt.Fprintf(stderr, "vm2image: %s\n", sig)
		return 128 + int(sig.sig.(syscall.Signal))
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "vm2image:", ue.err)
		return 2
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "vm2image:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "vm2image:", err)
	return 1
}
