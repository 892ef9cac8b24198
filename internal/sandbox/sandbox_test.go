package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vm2image/vm2image/internal/testenv"
)

func TestMain(m *testing.M) {
	Main()
	os.Exit(m.Run())
}

// sandboxRoot is an overlay of the Debian fixture root with the small /dev the builder makes.
func sandboxRoot(t *testing.T) string {
	t.Helper()
	testenv.Short(t)
	testenv.RequireRoot(t)
	return sandboxRootB(t)
}

func sandboxRootB(t testing.TB) string {
	t.Helper()
	root := testenv.Overlay(t, testenv.Root(t, testenv.Bookworm))
	dev := filepath.Join(root, "dev")
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dev, unix.MNT_DETACH) })
	if err := unix.Mknod(filepath.Join(dev, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	return root
}

// sh runs a shell line in a sandbox of root and returns its output.
func sh(t *testing.T, root string, network bool, line string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), Spec{Root: root, Path: "/bin/sh", Argv: []string{"sh", "-c", line},
		Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, Network: network}, &out)
	return out.String(), err
}

// TestSandboxWalls looks at the sandbox from inside: its own pid 1, a /proc without the host's
// processes, no host mount, the reduced capabilities, no_new_privs, only loopback.
func TestSandboxWalls(t *testing.T) {
	root := sandboxRoot(t)
	out, err := sh(t, root, false, `echo pid=$$; ls -d /proc/[0-9]* | wc -l; grep -c . /proc/self/mountinfo;
grep -E '^(CapEff|CapBnd|CapPrm|CapInh|CapAmb|NoNewPrivs):' /proc/self/status; tail -n +3 /proc/net/dev | cut -d: -f1; hostname`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var keep uint64
	for _, c := range Kept {
		keep |= 1 << c
	}
	want := []string{"pid=1", "CapEff:\t" + hex16(keep), "CapBnd:\t" + hex16(keep), "CapPrm:\t" + hex16(keep),
		"CapInh:\t" + hex16(keep), "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "vm2image-build"}
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("sandbox output lacks %q:\n%s", w, out)
		}
	}
	lines := strings.Split(out, "\n")
	if n := strings.TrimSpace(lines[1]); n != "3" && n != "2" { // sh, ls (and wc)
		t.Errorf("the sandbox sees %s processes, want only its own:\n%s", n, out)
	}
	if ifs := strings.Fields(strings.Join(lines[9:len(lines)-2], " ")); len(ifs) != 1 || ifs[0] != "lo" {
		t.Errorf("offline sandbox has interfaces %q, want only lo", ifs)
	}
	out, err = sh(t, root, false, "cut -d' ' -f5 /proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, mp := range strings.Fields(out) {
		if mp != "/" && mp != "/dev" && mp != "/sys" && mp != "/proc" && !strings.HasPrefix(mp, "/proc/") {
			t.Errorf("the sandbox has a mount on %s: only its root, /dev, /proc and /sys belong there", mp)
		}
	}
	out, err = sh(t, root, true, `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '`)
	if err != nil || strings.TrimSpace(out) == "lo" {
		t.Errorf("sandbox with the network sees only %q (%v)", out, err)
	}
}

func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b)
}

// TestSandboxExitAndSetupErrors: a command's exit status comes back as an *ExitError; a missing
// program or root is a setup error, not an exit status.
func TestSandboxExitAndSetupErrors(t *testing.T) {
	root := sandboxRoot(t)
	_, err := sh(t, root, false, "exit 7")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 7 {
		t.Errorf("exit 7: got %v", err)
	}
	err = Run(context.Background(), Spec{Root: root, Path: "/nonexistent", Argv: []string{"x"}}, &bytes.Buffer{})
	if !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "executing /nonexistent") {
		t.Errorf("missing program: got %v", err)
	}
	err = Run(context.Background(), Spec{Root: filepath.Join(root, "nonexistent"), Path: "/bin/sh", Argv: []string{"sh"}}, &bytes.Buffer{})
	if !errors.Is(err, ErrSetup) {
		t.Errorf("missing root: got %v", err)
	}
}

// TestRunWithoutMain: a binary whose main does not call Main is re-executed as the init, does
// not set anything up and exits 0: Run must report a setup error, not a command that succeeded.
func TestRunWithoutMain(t *testing.T) {
	testenv.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "nomain")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./testdata/nomain")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/nomain: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, t.TempDir()).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "sandbox.Main") {
		t.Errorf("Run from a binary without Main: %v\n%s", err, out)
	}
}
