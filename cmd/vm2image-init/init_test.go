package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/services"
)

// binDir holds the built init; TestMain removes it.
var binDir string

// initBinary builds the static init once per test process.
var initBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "vm2image-init-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "vm2image-init")
	cmd := exec.Command(filepath.Join(goroot(), "bin", "go"), "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the init: %v\n%s", err, out)
	}
	return bin, nil
})

func goroot() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "/usr/local/go"
	}
	return strings.TrimSpace(string(out))
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// initProc is a running init with its stderr collected.
type initProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	logb bytes.Buffer
	done chan struct{}
	err  error
	took time.Duration
}

func (p *initProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logb.Write(b)
}

func (p *initProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logb.String()
}

// startInit writes cfg to a services.yaml and runs the init on it (or on args when given).
func startInit(t *testing.T, cfg services.Config, args ...string) *initProc {
	t.Helper()
	bin, err := initBinary()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "services.yaml")
	f, err := os.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := services.WriteServicesYAML(f, cfg); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &initProc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"--config", conf}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); p.took = time.Since(start); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
		t.Logf("init log:\n%s", p.log())
	})
	return p
}

// waitLog waits for a log line matching re and returns its submatches.
func (p *initProc) waitLog(re string, timeout time.Duration) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(p.log()); m != nil {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("no log line matching %q within %s", re, timeout)
	return nil
}

// servicePID waits for "starting NAME (pid N)" and returns N.
func (p *initProc) servicePID(name string) int {
	p.t.Helper()
	m := p.waitLog(`starting `+regexp.QuoteMeta(name)+` \(pid (\d+)\)`, 5*time.Second)
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// wait waits for the init to exit and returns its exit code.
func (p *initProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("init still running after %s", timeout)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatal(p.err)
	return -1
}

func (p *initProc) signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

func sh(name, script string) services.Service {
	return services.Service{Name: name, Argv: []string{"sh", "-c", script}, User: "root", Cwd: "/"}
}

func stat(t *testing.T, pid int) procs.Stat {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	st, err := procs.ParseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestServicesRunAsTheirUsers runs python3's web server as nobody in a directory of its own and
// a shell as root; SIGTERM to the init reaches both, and the init exits 0.
func TestServicesRunAsTheirUsers(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "/usr/bin/python3")
	t.Parallel()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // t.TempDir's own directories: let nobody in
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("from the web service\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	web := services.Service{Name: "web", Argv: []string{"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", strconv.Itoa(port)},
		User: "nobody", UID: 65534, GID: 65534, Cwd: dir}
	p := startInit(t, services.Config{Services: []services.Service{web, sh("sleeper", "sleep 1000; true")}, StopTimeout: 5 * time.Second})
	webPID, sleeperPID := p.servicePID("web"), p.servicePID("sleeper")
	if err := testenv.WaitPort(t.Context(), fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", webPID))
	if !regexp.MustCompile(`(?m)^Uid:\t65534\t65534\t65534\t65534$`).Match(status) ||
		!regexp.MustCompile(`(?m)^Gid:\t65534\t65534\t65534\t65534$`).Match(status) {
		t.Errorf("web's ids:\n%s", status)
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", webPID)); cwd != dir {
		t.Errorf("web's cwd %q, want %q", cwd, dir)
	}
	for _, pid := range []int{webPID, sleeperPID} {
		if st := stat(t, pid); st.PGRP != pid || st.PPID != p.cmd.Process.Pid {
			t.Errorf("pid %d: pgrp %d, ppid %d: want its own group under the init", pid, st.PGRP, st.PPID)
		}
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(4 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	log := p.log()
	for _, want := range []string{"received SIGTERM: stopping every service", fmt.Sprintf("web (pid %d) was killed by SIGTERM", webPID),
		fmt.Sprintf("sleeper (pid %d) was killed by SIGTERM", sleeperPID)} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// TestFailedServiceStopsOthers: with stop_on_failure, a service that exits 3 stops the others;
// the init exits 3.
func TestFailedServiceStopsOthers(t *testing.T) {
	t.Parallel()
	p := startInit(t, services.Config{StopOnFailure: true, Services: []services.Service{sh("other", "sleep 1000; true"), sh("fails", "sleep 0.3; exit 3")}})
	other := p.servicePID("other")
	if code := p.wait(5 * time.Second); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if !strings.Contains(p.log(), fmt.Sprintf("other (pid %d) was killed by SIGTERM", other)) {
		t.Error("the other service was not stopped with SIGTERM")
	}
}

// TestRestartOnFailure restarts a service that fails twice, then gives up on one that always
// fails once it used its restarts per minute.
func TestRestartOnFailure(t *testing.T) {
	t.Parallel()
	runs := filepath.Join(t.TempDir(), "runs")
	flaky := sh("flaky", `echo run >> `+runs+`; [ "$(wc -l < `+runs+`)" -ge 3 ] && exec sleep 1000; exit 1`)
	flaky.Restart = services.RestartOnFailure
	p := startInit(t, services.Config{Services: []services.Service{flaky}})
	p.waitLog(`(?s)(starting flaky \(pid.*){3}`, 5*time.Second) // not "restarting flaky"
	p.signal(syscall.SIGTERM)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	// Counted once the init has ended: its log is complete, no restart can still come.
	if n := strings.Count(p.log(), "restarting flaky"); n != 2 {
		t.Errorf("%d restarts, want exactly 2", n)
	}

	broken := sh("broken", "exit 4")
	broken.Restart = services.RestartAlways
	p = startInit(t, services.Config{Services: []services.Service{broken}, RestartsPerMinute: 2})
	if code := p.wait(5 * time.Second); code != 4 {
		t.Errorf("exit code %d, want 4", code)
	}
	if n := strings.Count(p.log(), "starting broken (pid"); n != 3 || !strings.Contains(p.log(), "giving up") {
		t.Errorf("%d starts, want 3 and giving up", n)
	}
}

// TestOrphansReaped: a service double-forks; the orphan is reparented to the init (a child
// subreaper here) and reaped when it exits: no zombie remains.
func TestOrphansReaped(t *testing.T) {
	t.Parallel()
	p := startInit(t, services.Config{Services: []services.Service{sh("forker", `(sleep 0.6 &) ; (sleep 0.7 &) ; exec sleep 1000`)}})
	leader := p.servicePID("forker")
	initPID := p.cmd.Process.Pid
	// The orphans are reparented to the init, then exit and are reaped.
	waitChildren(t, initPID, func(n int) bool { return n == 3 }, "the leader and two reparented orphans")
	kids := waitChildren(t, initPID, func(n int) bool { return n == 1 }, "only the leader")
	for _, k := range kids {
		if k.PID != leader || k.State == 'Z' {
			t.Errorf("init's child after the orphans exited: %+v, want only the leader %d, no zombie", k, leader)
		}
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// waitChildren polls the init's children until ok(their number) and returns them.
func waitChildren(t *testing.T, ppid int, ok func(int) bool, want string) []procs.Stat {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var kids []procs.Stat
		for _, c := range children(ppid) {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.pid)); err == nil {
				if st, err := procs.ParseStat(b); err == nil {
					kids = append(kids, st)
				}
			}
		}
		if ok(len(kids)) {
			return kids
		}
		if time.Now().After(deadline) {
			t.Fatalf("init's children %+v: want %s", kids, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDetachingDaemon: an unknown daemon forks into a new session and exits 0; the init keeps
// the service while the daemon lives, forwards signals to it, and ends when it is gone.
func TestDetachingDaemon(t *testing.T) {
	t.Parallel()
	// The daemon marks its end just before it exits: an init that ended while it lived ends
	// before the mark exists.
	ended := filepath.Join(t.TempDir(), "ended")
	p := startInit(t, services.Config{Services: []services.Service{sh("daemon", `setsid sh -c 'sleep 1.2; touch `+ended+`' & exit 0`)}})
	p.waitLog(`daemon: pid \d+ exited 0 but its processes live on`, 5*time.Second)
	if code := p.wait(5 * time.Second); code != 0 || !strings.Contains(p.log(), "daemon: its last process is gone") {
		t.Errorf("exit code %d, want 0 after the daemon's end", code)
	}
	if _, err := os.Stat(ended); err != nil {
		t.Errorf("the init exited while the daemon lived: %v", err)
	}

	p = startInit(t, services.Config{Services: []services.Service{sh("daemon", `setsid sleep 1000 & exit 0`)}})
	p.waitLog(`exited 0 but its processes live on`, 5*time.Second)
	p.signal(syscall.SIGTERM)
	if code := p.wait(3 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// TestStopTimeoutAndSignals: SIGHUP is forwarded; a service ignoring SIGTERM is killed after the
// stop timeout and the init exits 137.
func TestStopTimeoutAndSignals(t *testing.T) {
	t.Parallel()
	hups, ready := filepath.Join(t.TempDir(), "hups"), filepath.Join(t.TempDir(), "ready")
	svc := sh("stubborn", `trap "" TERM; trap "echo hup >> `+hups+`" HUP; touch `+ready+`; while :; do sleep 0.05; done`)
	p := startInit(t, services.Config{Services: []services.Service{svc}, StopTimeout: 700 * time.Millisecond})
	p.servicePID("stubborn")
	waitFile(t, ready, 5*time.Second) // its traps are set
	p.signal(syscall.SIGHUP)
	p.waitLog("forwarding SIGHUP", 2*time.Second)
	waitFile(t, hups, 2*time.Second) // the service got SIGHUP
	p.signal(syscall.SIGTERM)
	if code := p.wait(4 * time.Second); code != exitKilled || p.took < 700*time.Millisecond {
		t.Errorf("exit code %d after %s, want %d after the stop timeout", code, p.took, exitKilled)
	}
}

// TestCommandMode: arguments replace services.yaml; the command's exit code is the init's.
func TestCommandMode(t *testing.T) {
	t.Parallel()
	p := startInit(t, services.Config{}, "sh", "-c", "exit 7")
	if code := p.wait(5 * time.Second); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	p = startInit(t, services.Config{}, "/nonexistent/program")
	if code := p.wait(5 * time.Second); code != 127 {
		t.Errorf("exit code %d for a missing program, want 127", code)
	}
	p = startInit(t, services.Config{})
	if code := p.wait(5 * time.Second); code != exitConfig || !strings.Contains(p.log(), "lists no services") {
		t.Errorf("exit code %d for no services, want %d", code, exitConfig)
	}
}

// TestCommandModeTerminal: an interactive command gets the terminal (docker run -it IMAGE sh):
// its process group is the terminal's foreground group, so it can read from it.
func TestCommandModeTerminal(t *testing.T) {
	testenv.RequireCommands(t, "script")
	t.Parallel()
	bin, err := initBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a command without the terminal stops (SIGTTIN)
	defer cancel()
	cmd := exec.CommandContext(ctx, "script", "-qec", bin+` sh -c 'read x; echo got:$x; exit 5'`, "/dev/null")
	cmd.Stdin = strings.NewReader("hello\n")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 5 || !strings.Contains(string(out), "got:hello") {
		t.Errorf("interactive command: %v\n%s", err, out)
	}
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, timeout)
		}
	}
}
