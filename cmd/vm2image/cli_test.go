package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangingAgent listens like an agent, records every connection and never answers: a command
// that connects to it hangs until its context ends.
type hangingAgent struct {
	addr     string
	accepted atomic.Int64
	arrived  chan struct{} // one value per connection
	mu       sync.Mutex
	conns    []net.Conn
}

func newHangingAgent(t *testing.T) *hangingAgent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingAgent{addr: ln.Addr().String(), arrived: make(chan struct{}, 100)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			h.accepted.Add(1)
			h.arrived <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			c.Close()
		}
	})
	return h
}

// runCLI runs argv through the real root command with a deadline (a command that wrongly
// connects to a hanging agent fails instead of hanging) and returns the exit code and stderr.
func runCLI(t *testing.T, timeout time.Duration, argv ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := execute(ctx, argv, &stdout, &stderr)
	return code, stderr.String()
}

// TestExitCodes runs command lines through the real root command: usage mistakes exit 2 in
// every command, a failure 1, and every mistake is found before the source is connected to.
func TestExitCodes(t *testing.T) {
	agent := newHangingAgent(t)
	t.Setenv("VM2IMAGE_TOKEN", "a-token-so-that-a-wrong-dial-would-happen")
	t.Setenv("VM2IMAGE_INIT", "/bin/true")
	dir := t.TempDir()
	out := filepath.Join(dir, "img.tar")
	existing := filepath.Join(dir, "existing.tar")
	writeFile(t, existing, "not ours to replace")
	a := agent.addr
	for _, tc := range []struct {
		argv []string
		code int
		want string // in stderr
	}{
		{[]string{"version"}, 0, ""},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"convrt", a}, 2, "did you mean convert"},
		{[]string{"cache", "bogus"}, 2, "unknown command"},
		{[]string{"verify", "onlyone"}, 2, "accepts 2 arg(s)"},
		{[]string{"verify", "a", "b", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"verify", "/nonexistent.tar", a}, 2, "/nonexistent.tar does not exist"},
		{[]string{"verify", "docker-archive:/nonexistent.tar", a}, 2, "does not exist"},
		{[]string{"verify", existing, a, "--wire-compression", "bogus"}, 2, "--wire-compression"},
		{[]string{"convert"}, 2, "accepts 1 arg(s)"},
		{[]string{"convert", a}, 2, "nothing to write"},
		{[]string{"convert", a, "-o", out, "--compression", "bogus"}, 2, `unknown --compression "bogus"`},
		{[]string{"convert", a, "-o", out, "--strategy", "bogus"}, 2, `unknown --strategy "bogus"`},
		{[]string{"convert", a, "-o", out, "--builder", "bogus"}, 2, `unknown --builder "bogus"`},
		{[]string{"convert", a, "-o", out, "--format", "bogus"}, 2, `unknown --format "bogus"`},
		{[]string{"convert", a, "-o", out, "--transfer", "bogus"}, 2, `unknown --transfer "bogus"`},
		{[]string{"convert", a, "-o", out, "--wire-compression", "bogus"}, 2, `unknown --wire-compression "bogus"`},
		{[]string{"convert", a, "--load", "--format", "oci"}, 2, "--format oci needs -o"},
		{[]string{"convert", "no/host", "-o", out}, 2, `unknown source "no/host"`},
		{[]string{"convert", a, "-o", filepath.Join(dir, "missing", "img.tar")}, 1, "missing does not exist"},
		{[]string{"convert", a, "-o", out, "--report", "/nonexistent/r.json"}, 1, "/nonexistent does not exist"},
		{[]string{"convert", a, "-o", existing}, 1, "give --force"},
		{[]string{"convert", "dir:/nonexistent-root", "-o", out}, 1, "/nonexistent-root does not exist"},
		{[]string{"export", a, "--wire-compression", "bogus", "-o", out}, 2, `unknown --wire-compression "bogus"`},
		{[]string{"export", a, "-o", "/nonexistent/vm.tar"}, 1, "/nonexistent does not exist"},
		{[]string{"export", a, "b"}, 2, "accepts 1 arg(s)"},
		{[]string{"diff", a, a, "--strategy", "bogus"}, 2, `unknown --strategy "bogus"`},
		{[]string{"diff", a}, 2, "accepts 2 arg(s)"},
		{[]string{"inspect", a, "--wire-compression", "bogus"}, 2, "--wire-compression"},
		{[]string{"inspect", "foo/bar"}, 2, `unknown source "foo/bar"`},
		{[]string{"cache", "ls", "extra"}, 2, "unknown command"},
		{[]string{"cache", "prune", "--older-than", "soon", "--cache-dir", dir}, 1, "--older-than"},
	} {
		t.Run(strings.Join(tc.argv, " "), func(t *testing.T) {
			code, stderr := runCLI(t, 5*time.Second, tc.argv...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); tc.code != 0 && n != 0 {
				t.Errorf("the error takes %d lines, want one: %q", n+1, stderr)
			}
		})
	}
	if n := agent.accepted.Load(); n != 0 {
		t.Errorf("%d connections to the agent: mistakes must be found before connecting", n)
	}
	if b, _ := os.ReadFile(existing); string(b) != "not ours to replace" {
		t.Errorf("an existing -o was changed: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestOutputLock: while one conversion holds -o (it is connecting to an agent that never
// answers), a second conversion to the same -o fails at once, naming the lock; one to another
// -o in the same directory is not held up; --force passes the existence check (and connects).
func TestOutputLock(t *testing.T) {
	agent := newHangingAgent(t)
	t.Setenv("VM2IMAGE_TOKEN", "hanging-agent-token-0123456789abcdefXYZ")
	t.Setenv("VM2IMAGE_INIT", "/bin/true")
	dir := t.TempDir()
	out := filepath.Join(dir, "img.tar")
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan int, 1)
	go func() {
		var so, se bytes.Buffer
		first <- execute(ctx, []string{"convert", agent.addr, "-o", out}, &so, &se)
	}()
	select {
	case <-agent.arrived: // the first holds the lock and is connecting
	case <-time.After(10 * time.Second):
		t.Fatal("the first conversion never connected")
	}
	code, stderr := runCLI(t, 5*time.Second, "convert", agent.addr, "-o", out)
	if code != 1 || !strings.Contains(stderr, "another vm2image is writing "+out) {
		t.Errorf("second conversion to the same -o: exit %d, %q", code, stderr)
	}
	if n := agent.accepted.Load(); n != 1 {
		t.Errorf("the refused conversion connected (%d connections)", n)
	}
	// Another -o in the same directory, and --force over an existing one, reach the agent.
	writeFile(t, filepath.Join(dir, "old.tar"), "old")
	for _, argv := range [][]string{
		{"convert", agent.addr, "-o", filepath.Join(dir, "other.tar")},
		{"convert", agent.addr, "-o", filepath.Join(dir, "old.tar"), "--force"},
	} {
		code, stderr := runCLI(t, 2*time.Second, argv...)
		if code != 1 || strings.Contains(stderr, "another vm2image") || strings.Contains(stderr, "exists") {
			t.Errorf("%v: exit %d, %q; want it to reach the agent and time out", argv, code, stderr)
		}
	}
	if n := agent.accepted.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
	cancel()
	if code := <-first; code != 1 {
		t.Errorf("first conversion: exit %d", code)
	}
	// Once the first is gone, the lock is free and its file removed.
	if left, _ := filepath.Glob(filepath.Join(dir, ".*lock")); len(left) != 0 {
		t.Errorf("lock files left behind: %v", left)
	}
}

// TestDiffDefaultStrategyMatchesConvert: diff and convert share one --strategy default, and it
// sees an edit that kept the file's size and mtime (rsync's quick check would not).
func TestDiffDefaultStrategyMatchesConvert(t *testing.T) {
	root := newRootCmd()
	def := map[string]string{}
	for _, name := range []string{"diff", "convert"} {
		c, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		def[name] = c.Flags().Lookup("strategy").DefValue
	}
	if def["diff"] != def["convert"] || def["diff"] != "checksum" {
		t.Errorf("--strategy defaults: %v, want checksum for both", def)
	}
	old, nw := t.TempDir(), t.TempDir()
	stamp := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for dir, content := range map[string]string{old: "aaaa", nw: "bbbb"} {
		p := filepath.Join(dir, "file")
		writeFile(t, p, content)
		if err := os.Chtimes(p, stamp, stamp); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dir, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := execute(context.Background(), []string{"diff", "dir:" + old, "dir:" + nw, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("diff: exit %d: %s", code, stderr.String())
	}
	var rep DiffReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Strategy != "checksum" || rep.Stats.Modified != 1 {
		t.Errorf("default diff: strategy %s, %d modified; want checksum and 1", rep.Strategy, rep.Stats.Modified)
	}
}

// TestInspectDirSystemUnknown: inspect of a dir: source does not give the converter's own
// kernel, CPUs and memory as the VM's.
func TestInspectDirSystemUnknown(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	writeFile(t, filepath.Join(root, "etc/os-release"), "ID=debian\nVERSION_ID=12\n")
	var stdout, stderr bytes.Buffer
	if code := execute(context.Background(), []string{"inspect", "dir:" + root, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr.String())
	}
	var rep InspectReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Info.Kernel != "" || rep.Info.CPUs != 0 || rep.Info.MemoryBytes != 0 || rep.SystemUnknown == "" {
		t.Errorf("inspect dir: reports kernel %q, %d CPUs, %d bytes of memory (unknown: %q)", rep.Info.Kernel, rep.Info.CPUs, rep.Info.MemoryBytes, rep.SystemUnknown)
	}
	stdout.Reset()
	execute(context.Background(), []string{"inspect", "dir:" + root}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "kernel, CPUs and memory unknown") {
		t.Errorf("inspect text output:\n%s", stdout.String())
	}
}
