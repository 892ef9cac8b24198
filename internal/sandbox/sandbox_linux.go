package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// initArg is the argv[0] under which the re-executed binary sets the sandbox up (Main).
const initArg = "vm2image-sandbox-init"

// Spec is one command to run in a sandbox.
type Spec struct {
	// Root is the host directory to pivot into. It should be a mount point whose mounts
	// (/dev, /dev/pts, caches) the caller has made; /proc and /sys are mounted fresh inside,
	// on directories that must exist in Root.
	Root string `json:"root"`
	// Path is the program's path inside Root; Argv its arguments (Argv[0] included); Env
	// exactly its environment; Dir its working directory inside Root ("" is "/").
	Path string   `json:"path"`
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir,omitempty"`
	// Network keeps the host's network namespace (to fetch packages). Otherwise the command
	// gets a namespace of its own with only the loopback interface.
	Network bool `json:"network,omitempty"`
	// ReadOnly are mount points inside Root (the caller's binds) made read-only for this
	// command only.
	ReadOnly []string `json:"read_only,omitempty"`
	// Hostname is the sandbox's host name ("" is "vm2image-build").
	Hostname string `json:"hostname,omitempty"`
}

// ExitError is a command that ran in the sandbox and exited non-zero (or was killed: Code -1).
type ExitError struct {
	Argv []string
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: exit status %d", strings.Join(e.Argv, " "), e.Code)
}

// ErrSetup marks a sandbox that could not be set up: the command did not run.
var ErrSetup = errors.New("setting up the sandbox")

// ready is the byte the init writes on fd 4 just before it execs the command: a binary that
// does not call Main never writes it, and its exit status means nothing.
const ready = 0

// Run runs spec in a new sandbox with stdout and stderr going to out, and waits for it. A
// cancelled ctx kills the sandbox's init, and with it, the kernel kills every process of its
// pid namespace. A non-zero exit is an *ExitError; a sandbox that could not be set up wraps
// ErrSetup.
func Run(ctx context.Context, spec Spec, out io.Writer) error {
	if len(spec.Argv) == 0 || spec.Path == "" || spec.Root == "" {
		return fmt.Errorf("%w: no command or root", ErrSetup)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSetup, err)
	}
	defer cfgR.Close()
	defer cfgW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSetup, err)
	}
	defer errR.Close()
	defer errW.Close()
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{initArg}
	cmd.Env = []string{} // the command's environment travels in the spec, never to this binary
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = []*os.File{cfgR, errW} // fds 3 and 4
	// Setsid: a session of its own, so no controlling terminal (no TIOCSTI into the user's).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: cloneFlags(spec.Network)}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: starting %s: %v", ErrSetup, initArg, err)
	}
	cfgR.Close()
	errW.Close()
	werr := json.NewEncoder(cfgW).Encode(spec)
	cfgW.Close()
	var setup bytes.Buffer
	_, _ = io.Copy(&setup, io.LimitReader(errR, 64<<10)) // EOF at the command's exec, or the init's exit
	err = cmd.Wait()
	switch {
	case setup.Len() == 0 && ctx.Err() == nil:
		return fmt.Errorf("%w: %s did not set a sandbox up: its main must call sandbox.Main first", ErrSetup, os.Args[0])
	case setup.Len() > 1 || (setup.Len() == 1 && setup.Bytes()[0] != ready):
		return fmt.Errorf("%w: %s", ErrSetup, strings.TrimSpace(strings.TrimPrefix(setup.String(), "\x00")))
	case werr != nil && err == nil:
		return fmt.Errorf("%w: sending the spec: %v", ErrSetup, werr)
	case ctx.Err() != nil:
		return fmt.Errorf("running %s: %w", strings.Join(spec.Argv, " "), ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Argv: spec.Argv, Code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("running %s: %w", strings.Join(spec.Argv, " "), err)
	}
	return nil
}

// cloneFlags are the namespaces a sandbox gets.
func cloneFlags(network bool) uintptr {
	f := uintptr(syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP)
	if !network {
		f |= syscall.CLONE_NEWNET
	}
	return f
}
