//go:build linux

package procs

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
)

// listenerSrc is a static helper: it listens on every argument of the form
// listen=NETWORK:ADDR, prints each bound address, then "ready", and exits
// when its stdin closes. Other arguments are ignored.
const listenerSrc = `package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

func main() {
	var keep []io.Closer
	for _, a := range os.Args[1:] {
		spec, ok := strings.CutPrefix(a, "listen=")
		if !ok {
			continue
		}
		network, addr, _ := strings.Cut(spec, ":")
		if strings.HasPrefix(network, "udp") {
			c, err := net.ListenPacket(network, addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			keep = append(keep, c)
			fmt.Println(c.LocalAddr())
			continue
		}
		l, err := net.Listen(network, addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		keep = append(keep, l)
		fmt.Println(l.Addr())
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range keep {
		c.Close()
	}
}
`

// binDir holds the built helper; TestMain removes it.
var binDir string

var buildListener = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "procs-listener-")
	if err != nil {
		return "", err
	}
	binDir = dir
	// Children run as other users: let them reach the binary.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(listenerSrc), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "listener")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err: err, out: string(out)}
	}
	return bin, nil
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "building listener: " + e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// listenerBin returns the static helper binary, skipping when no Go
// toolchain can build it.
func listenerBin(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		testenv.Skip(t, "no go toolchain on PATH to build the static helper: "+err.Error())
	}
	bin, err := buildListener()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startListener starts cmd (the helper), waits for it to bind and returns
// the bound addresses it printed. The child is stopped at cleanup.
func startListener(t *testing.T, cmd *exec.Cmd) []*net.TCPAddr {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", cmd.Args, err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addrs, err := readReady(stdout)
	if err != nil {
		t.Fatalf("waiting for %v: %v; stderr: %s", cmd.Args, err, stderr.String())
	}
	return addrs
}

// readReady reads printed addresses until "ready", with a deadline.
func readReady(r io.Reader) ([]*net.TCPAddr, error) {
	type result struct {
		addrs []*net.TCPAddr
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		var res result
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ch <- res
				return
			}
			a, err := net.ResolveTCPAddr("tcp", sc.Text())
			if err != nil {
				ch <- result{err: err}
				return
			}
			res.addrs = append(res.addrs, a)
		}
		ch <- result{err: io.ErrUnexpectedEOF}
	}()
	select {
	case res := <-ch:
		return res.addrs, res.err
	case <-time.After(10 * time.Second):
		return nil, context.DeadlineExceeded
	}
}

// mkdir0755 makes a temporary directory that other users can enter.
func mkdir0755(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// list runs List and fails the test on error.
func list(t *testing.T, opts Options) []Process {
	t.Helper()
	ps, err := List(context.Background(), opts)
	if err != nil {
		t.Fatalf("List(%+v): %v", opts, err)
	}
	return ps
}

// find returns the process with pid, failing the test when it is absent.
func find(t *testing.T, ps []Process, pid int) Process {
	t.Helper()
	for _, p := range ps {
		if p.PID == pid {
			return p
		}
	}
	t.Fatalf("pid %d not listed among %d processes", pid, len(ps))
	return Process{}
}

func has(ps []Process, pid int) bool {
	for _, p := range ps {
		if p.PID == pid {
			return true
		}
	}
	return false
}

// hasSocket reports whether socks holds proto addr:port.
func hasSocket(socks []Socket, proto, addr string, port int) bool {
	for _, s := range socks {
		if s.Proto == proto && s.Addr == addr && s.Port == port {
			return true
		}
	}
	return false
}

// passwdHas reports whether the host's file has an entry "name:x:id:"; an
// empty name matches any.
func passwdHas(t *testing.T, file, name, id string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(line, ":")
		if len(f) > 2 && (name == "" || f[0] == name) && f[2] == id {
			return true
		}
	}
	return false
}
