package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/fixture"
)

// VM is a fixture root running as a small "virtual machine": its own pid and mount namespaces,
// /proc, /sys and a tmpfs /run mounted inside, services started, and the agent serving it from
// inside, as it would on a real VM.
type VM struct {
	Root  string // the VM's root as seen from the host (an overlay on the cached root)
	Addr  string // the agent's HOST:PORT
	Token []byte
	// Fingerprint is the agent's certificate fingerprint, from its second line.
	Fingerprint string
	// Ports of the services started in the VM: "nginx" and "app".
	Ports map[string]int
	cmd   *exec.Cmd
}

// AgentBinary builds the static agent once per test process and returns its path.
func AgentBinary(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() { agentPath, agentErr = buildStatic("vm2image-agent", "github.com/vm2image/vm2image/cmd/agent") })
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentPath
}

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// freePort returns a TCP port free on all addresses at the time of the call.
func freePort() (int, error) { return fixture.FreePort() }

// StartWebVM boots the WebVM fixture on an overlay of its cached root for the test: nginx on a
// free port (v4 and v6), the app's own busybox httpd as user app on another, the agent on a third.
func StartWebVM(t testing.TB) *VM {
	t.Helper()
	RequireCommands(t, "unshare", "chroot")
	root := Overlay(t, Root(t, WebVM))
	vm, err := BootWebVM(root, AgentBinary(t), fixtureToken(), "127.0.0.1:0", &tlogWriter{t: t})
	if vm != nil {
		t.Cleanup(vm.Stop)
	}
	if err != nil {
		t.Fatalf("booting the fixture VM: %v", err)
	}
	return vm
}

// BootWebVM starts the WebVM services and the agent (listening on agentAddr) in root, a writable
// copy or overlay of the WebVM recipe's root; with agentBin "", no agent (start one inside with
// nsenter into InitPID's namespaces). The caller stops the VM with Stop, also on error.
func BootWebVM(root, agentBin string, token []byte, agentAddr string, stderr io.Writer) (*VM, error) {
	vm := &VM{Root: root, Token: token, Ports: map[string]int{}}
	for _, name := range []string{"nginx", "app"} {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		vm.Ports[name] = p
	}
	site := filepath.Join(root, "etc/nginx/sites-available/default")
	b, err := os.ReadFile(site)
	if err != nil {
		return nil, err
	}
	conf := strings.ReplaceAll(string(b), "listen 80 default_server", fmt.Sprintf("listen %d default_server", vm.Ports["nginx"]))
	conf = strings.ReplaceAll(conf, "listen [::]:80 default_server", fmt.Sprintf("listen [::]:%d default_server", vm.Ports["nginx"]))
	if err := os.WriteFile(site, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	last := fmt.Sprintf("exec /run/vm2image-agent --listen %s --token-file /run/vm2image-token --quiet", agentAddr)
	if agentBin == "" { // no agent: the VM idles until stopped, and someone starts one inside
		last, agentBin = "exec sleep infinity", "/dev/null"
	}
	inside := fmt.Sprintf(`mount -t sysfs sysfs /sys 2>/dev/null || true
/usr/sbin/nginx
setpriv --reuid=app --regid=app --init-groups busybox httpd -p 127.0.0.1:%d -h /srv/app/public
%s`, vm.Ports["app"], last)
	outside := `set -e
mount -t tmpfs -o mode=755 tmpfs "$VMROOT/run"
mount -t tmpfs -o mode=755 tmpfs "$VMROOT/dev"
for n in "null 1 3" "zero 1 5" "random 1 8" "urandom 1 9" "tty 5 0"; do set -- $n; mknod -m 666 "$VMROOT/dev/$1" c "$2" "$3"; done
cp "$AGENT" "$VMROOT/run/vm2image-agent"
printf '%s\n' "$TOKEN" > "$VMROOT/run/vm2image-token"
exec chroot "$VMROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c "$INSIDE"`
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--mount-proc="+filepath.Join(root, "proc"),
		"--kill-child", "/bin/sh", "-c", outside)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "VMROOT=" + root, "AGENT=" + agentBin,
		"TOKEN=" + string(token), "INSIDE=" + inside}
	// No Pdeathsig: it fires when the OS thread that forked dies, and Go retires threads (a
	// goroutine that entered another network namespace ends locked to its thread), which
	// killed VMs in the middle of tests. Stop kills the VM; unshare --kill-child takes the rest.
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	vm.cmd = cmd
	if last == "exec sleep infinity" {
		go io.Copy(io.Discard, stdout)
	} else if vm.Addr, vm.Fingerprint, err = readListening(stdout, 30*time.Second); err != nil {
		return vm, err
	}
	for name, port := range vm.Ports {
		if err := WaitPort(context.Background(), fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second); err != nil {
			return vm, fmt.Errorf("service %s: %w", name, err)
		}
	}
	return vm, nil
}

// InitPID returns the host's PID of the VM's first process (pid 1 in its namespace), for
// nsenter; 0 when it cannot be found.
func (vm *VM) InitPID() int {
	if vm.cmd == nil || vm.cmd.Process == nil {
		return 0
	}
	pid := vm.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	var child int
	fmt.Sscan(string(b), &child)
	return child
}

// Stop kills the VM: unshare dies, its child (the VM's init) gets SIGKILL through
// --kill-child, and the kernel kills every other process of the VM's pid namespace.
func (vm *VM) Stop() {
	if vm.cmd != nil && vm.cmd.Process != nil {
		_ = vm.cmd.Process.Kill()
		_ = vm.cmd.Wait()
		vm.cmd = nil
	}
}

// fixtureToken is a fresh agent token strong enough for the agent and the converter.
func fixtureToken() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return []byte("fixture-token-" + hex.EncodeToString(b))
}

// readListening waits for the agent's first two lines and returns the address and the
// certificate fingerprint they name.
func readListening(r io.Reader, timeout time.Duration) (addr, fingerprint string, err error) {
	type result struct {
		lines [2]string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		var res result
		br := bufio.NewReader(r)
		for i := range res.lines {
			if res.lines[i], res.err = br.ReadString('\n'); res.err != nil {
				break
			}
		}
		ch <- res
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case res := <-ch:
		addr, ok := strings.CutPrefix(strings.TrimSpace(res.lines[0]), "vm2image-agent listening on ")
		if !ok {
			return "", "", fmt.Errorf("unexpected first line %q (%v)", res.lines[0], res.err)
		}
		fp, ok := strings.CutPrefix(strings.TrimSpace(res.lines[1]), "vm2image-agent fingerprint ")
		if !ok {
			return "", "", fmt.Errorf("unexpected second line %q (%v)", res.lines[1], res.err)
		}
		return addr, fp, nil
	case <-time.After(timeout):
		return "", "", fmt.Errorf("no listening and fingerprint lines within %s", timeout)
	}
}

// WaitPort waits until addr accepts TCP connections (fixture.WaitPort).
func WaitPort(ctx context.Context, addr string, timeout time.Duration) error {
	return fixture.WaitPort(ctx, addr, timeout)
}

type tlogWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("vm: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
