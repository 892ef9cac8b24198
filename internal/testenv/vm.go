package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
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
	proc  *fixture.Process
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
	inside := fmt.Sprintf(`/usr/sbin/nginx
setpriv --reuid=app --regid=app --init-groups busybox httpd -p 127.0.0.1:%d -h /srv/app/public`, vm.Ports["app"])
	boot := fixture.Boot{Root: root, Agent: agentBin, Token: token, Inside: inside, Listen: agentAddr}
	p, err := boot.Start(stderr, 30*time.Second)
	vm.proc = p
	if err != nil {
		return vm, err
	}
	vm.Addr, vm.Fingerprint = p.Addr, p.Fingerprint
	for name, port := range vm.Ports {
		if err := WaitPort(context.Background(), fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second); err != nil {
			return vm, fmt.Errorf("service %s: %w", name, err)
		}
	}
	return vm, nil
}

// InitPID returns the host's PID of the VM's first process (pid 1 in its namespace), for
// nsenter; 0 when it cannot be found.
func (vm *VM) InitPID() int { return vm.proc.InitPID() }

// Stop kills the VM and every process in it.
func (vm *VM) Stop() { vm.proc.Stop() }

// fixtureToken is a fresh agent token strong enough for the agent and the converter.
func fixtureToken() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return []byte("fixture-token-" + hex.EncodeToString(b))
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
