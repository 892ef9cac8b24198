package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// vm2imageBinary builds the real vm2image once per test process.
func vm2imageBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vm2image-cli-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "vm2image")
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if b, err := exec.Command(goBin, "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = errors.New(string(b))
		}
	})
	if binErr != nil {
		t.Fatalf("building vm2image: %v", binErr)
	}
	return binPath
}

// TestInterruptExits130 starts the real binary converting from an agent that never answers,
// sends SIGINT once it is connecting, and checks: exit code 130, the interrupt said in one
// line and no "context canceled" chain, and a report that names the error and the phase.
func TestInterruptExits130(t *testing.T) {
	bin := vm2imageBinary(t)
	agent := newHangingAgent(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	cmd := exec.Command(bin, "convert", agent.addr, "-o", filepath.Join(dir, "img.tar"), "--report", report)
	cmd.Env = append(os.Environ(), "VM2IMAGE_TOKEN=hanging-agent-token-0123456789abcdefXYZ", "VM2IMAGE_INIT=/bin/true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-agent.arrived:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the conversion never connected")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 20s after SIGINT; stderr:\n%s", stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit code %d, want 130", code)
	}
	var errLines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !strings.HasSuffix(l, "...") && !strings.Contains(l, " failed after ") { // progress lines
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || errLines[0] != "vm2image: interrupted by SIGINT" {
		t.Errorf("error lines %q, want the one line \"vm2image: interrupted by SIGINT\"", errLines)
	}
	if strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("stderr shows a context canceled chain")
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no report after the failure: %v", err)
	}
	var rep convert.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Error == "" || rep.FailedPhase != convert.PhaseConnect {
		t.Errorf("report error %q, phase %q; want an error and phase %q", rep.Error, rep.FailedPhase, convert.PhaseConnect)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*img*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestExportRefusesTerminal: export without -o, its standard output a terminal (script(1)
// gives it a pty), refuses with exit 2 before reading anything; redirected, it writes the tar.
func TestExportRefusesTerminal(t *testing.T) {
	testenv.RequireCommands(t, "script")
	bin := vm2imageBinary(t)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "hello"), "hello")
	out, err := exec.Command("script", "-qec", bin+" export dir:"+root, "/dev/null").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "refusing to write a tar archive to a terminal") {
		t.Errorf("export to a terminal: %v, output %q; want exit 2 and a refusal", err, out)
	}
	if bytes.Contains(out, []byte("hello")) {
		t.Errorf("tar bytes reached the terminal")
	}
	cmd := exec.Command(bin, "export", "dir:"+root)
	var tarOut bytes.Buffer
	cmd.Stdout = &tarOut
	if err := cmd.Run(); err != nil || !bytes.Contains(tarOut.Bytes(), []byte("hello")) {
		t.Errorf("export to a pipe: %v, %d bytes", err, tarOut.Len())
	}
}
