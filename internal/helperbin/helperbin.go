package helperbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNotFound is wrapped by Find's error when the binary is nowhere.
var ErrNotFound = errors.New("not beside vm2image nor on PATH")

// Find looks for the binary name beside the running executable, then on PATH. what says what
// it is for and env the variable the command line reads to name it, both for the error.
func Find(name, what, env string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		if p, ok := beside(exe, name); ok {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("finding %s (%s): %w; build it with `make build` or set %s", name, what, ErrNotFound, env)
}

// beside is name in the directory of exe, when it is a regular file there.
func beside(exe, name string) (string, bool) {
	p := filepath.Join(filepath.Dir(exe), name)
	fi, err := os.Stat(p)
	return p, err == nil && fi.Mode().IsRegular()
}
