package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/vmread"
	"github.com/vm2image/vm2image/pkg/wire"
)

// runAgent runs the real agent binary with args and returns its exit code, stdout and stderr.
func runAgent(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(testenv.AgentBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestAgentCommandLine: the agent's command line follows vm2image's conventions: help exits 0
// with a description and examples, a mistyped flag or command gets a suggestion and exit 2
// (in one line), --version and the version command print the same line.
func TestAgentCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		stdout    string // in stdout
		stderr    string // in stderr
		stderrOne bool   // stderr is one line
	}{
		{[]string{"-h"}, 0, "Examples:\n", "", false},
		{[]string{"--help"}, 0, "--token-file", "", false},
		{[]string{"help"}, 0, "listens on all addresses by default", "", false},
		{[]string{"--listn", "127.0.0.1:0"}, 2, "", "unknown flag: --listn; did you mean --listen?", true},
		{[]string{"--token-fil", "x"}, 2, "", "did you mean --token-file?", true},
		{[]string{"--frobnicate"}, 2, "", "unknown flag: --frobnicate (see 'vm2image-agent --help')", true},
		{[]string{"verison"}, 2, "", `unknown command "verison" for "vm2image-agent" (the agent takes flags only); did you mean version?`, true},
		{[]string{"version", "extra"}, 2, "", `unexpected argument "extra"`, true},
		{[]string{"--max-conns", "many"}, 2, "", "--max-conns", true},
		{[]string{"--version"}, 0, "vm2image-agent " + vmread.Version + " (protocol 2, ", "", false},
		{[]string{"version"}, 0, "vm2image-agent " + vmread.Version + " (protocol 2, ", "", false},
		{[]string{"--token-file", "/nonexistent/token"}, 1, "", "vm2image-agent: ", true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runAgent(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, %q in stdout, %q in stderr", code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
			if tc.stderrOne && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("the error takes more than one line: %q", stderr)
			}
			if tc.code == 0 && stderr != "" {
				t.Errorf("stderr %q on success", stderr)
			}
		})
	}
	_, v1, _ := runAgent(t, "--version")
	_, v2, _ := runAgent(t, "version")
	if v1 != v2 || strings.Count(v1, "\n") != 1 {
		t.Errorf("--version %q and version %q differ or are not one line", v1, v2)
	}
}

// logAgent runs the agent with a token file of the given mode and collects its stderr.
type logAgent struct {
	addr   string
	mu     sync.Mutex
	stderr []string
	lines  chan string
}

func startLogAgent(t *testing.T, tokenMode os.FileMode) *logAgent {
	t.Helper()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(strongToken+"\n"), tokenMode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tok, tokenMode) // whatever the umask
	cmd := exec.Command(testenv.AgentBinary(t), "--listen", "127.0.0.1:0", "--token-file", tok)
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	a := &logAgent{lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			a.mu.Lock()
			a.stderr = append(a.stderr, sc.Text())
			a.mu.Unlock()
			a.lines <- sc.Text()
		}
	}()
	br := bufio.NewReader(stdout)
	first, _ := br.ReadString('\n')
	second, _ := br.ReadString('\n')
	m := regexp.MustCompile(`^vm2image-agent listening on (127\.0\.0\.1:\d+)\n$`).FindStringSubmatch(first)
	if m == nil || !strings.HasPrefix(second, "vm2image-agent fingerprint SHA256:") {
		t.Fatalf("stdout starts %q %q: the first two lines must stay as they were", first, second)
	}
	a.addr = m[1]
	return a
}

// waitLine waits for a stderr line matching re.
func (a *logAgent) waitLine(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l := <-a.lines:
			if rx.MatchString(l) {
				return l
			}
		case <-deadline:
			a.mu.Lock()
			defer a.mu.Unlock()
			t.Fatalf("no stderr line matching %s in %q", re, a.stderr)
		}
	}
}

// TestAgentLogsConnections: each accepted and each refused connection makes one stderr line
// naming the peer's address (the client's own local address, port included).
func TestAgentLogsConnections(t *testing.T) {
	a := startLogAgent(t, 0o600)
	ctx := context.Background()
	cl, err := proto.Dial(ctx, a.addr, []byte(strongToken), proto.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var info wire.Info
	if err := cl.CallJSON(ctx, wire.OpInfo, nil, &info); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	a.waitLine(t, `proto: 127\.0\.0\.1:\d+: accepted connection$`)
	if _, err := proto.Dial(ctx, a.addr, []byte("k7Q2-vX9p_Lm4Rt8Zw3Ny6Bc1Hf5Jd0GX"), proto.ClientOptions{}); !errors.Is(err, proto.ErrAuth) {
		t.Fatalf("wrong token: %v", err)
	}
	a.waitLine(t, `proto: 127\.0\.0\.1:\d+: refusing connection: .*token`)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.stderr {
		if strings.Contains(l, "warning") {
			t.Errorf("a warning for a 0600 token file: %q", l)
		}
	}
}

// TestAgentWarnsOfReadableTokenFile: a token file others can read is named in a warning, and
// the agent still serves (the stdout lines are unchanged).
func TestAgentWarnsOfReadableTokenFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		a := startLogAgent(t, mode)
		a.waitLine(t, `warning: token file .*/token is readable by group or others \(mode `+fmt.Sprintf("%04o", mode)+`\).*chmod 600`)
	}
}
