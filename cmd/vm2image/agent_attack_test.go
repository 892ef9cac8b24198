package main

// Attacks on the converter-agent channel, against the real binaries: a relay, a byte-flipping
// proxy, weak tokens, the wrong transport or version, a flood of unauthenticated connections, and
// a hostile agent that holds the token.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/proto"
)

const attackToken = "Zq8-wL3mK9_pT2vR7xN4yB6cH1fJ5dG0sQ"

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type realAgent struct {
	addr, fingerprint, tokenFile string
	log                          *lockedBuffer
}

// tinyRoot is a VM root with just enough for inspect.
func tinyRoot(t *testing.T) string {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	writeFile(t, filepath.Join(root, "etc/os-release"), "ID=debian\nVERSION_ID=12\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n\n")
	return root
}

// startRealAgent runs bin/vm2image-agent on a tiny root with a strong token file.
func startRealAgent(t *testing.T, extra ...string) *realAgent {
	t.Helper()
	a := &realAgent{tokenFile: filepath.Join(t.TempDir(), "token"), log: &lockedBuffer{}}
	writeFile(t, a.tokenFile, attackToken+"\n")
	args := append([]string{"--listen", "127.0.0.1:0", "--root", tinyRoot(t), "--token-file", a.tokenFile}, extra...)
	cmd := exec.Command(testenv.AgentBinary(t), args...)
	cmd.Stderr = a.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	br := bufio.NewReader(stdout)
	l1, _ := br.ReadString('\n')
	l2, _ := br.ReadString('\n')
	go io.Copy(io.Discard, br)
	var ok bool
	if a.addr, ok = strings.CutPrefix(strings.TrimSpace(l1), "vm2image-agent listening on "); !ok {
		t.Fatalf("agent's first line %q (log: %s)", l1, a.log)
	}
	a.fingerprint, _ = strings.CutPrefix(strings.TrimSpace(l2), "vm2image-agent fingerprint ")
	return a
}

// runAttackCLI runs the real vm2image and returns its combined output, its error and its peak RSS in
// bytes (wait4's rusage).
func runAttackCLI(t *testing.T, env []string, args ...string) (string, error, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vm2imageBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var rss int64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss << 10
		}
	}
	return string(out), err, rss
}

// pipe copies between a and b until either side ends, then closes both.
func pipe(a, b net.Conn) {
	var once sync.Once
	done := func() { once.Do(func() { a.Close(); b.Close() }) }
	go func() { io.Copy(a, b); done() }()
	go func() { io.Copy(b, a); done() }()
}

// serveProxy accepts connections on a new loopback listener and hands each to fn.
func serveProxy(t *testing.T, fn func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fn(c)
		}
	}()
	return ln.Addr().String()
}

// TestAttackRelay puts a relay between converter and agent that terminates TLS on both sides
// with keys of its own and forwards the plaintext. The proofs cover each TLS session's exporter,
// so both sides refuse; with --fingerprint the converter refuses at the TLS handshake already.
func TestAttackRelay(t *testing.T) {
	a := startRealAgent(t)
	relayID, err := proto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	relay := serveProxy(t, func(c net.Conn) {
		front := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{relayID.Cert}, MinVersion: tls.VersionTLS13})
		back, err := tls.Dial("tcp", a.addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err != nil {
			c.Close()
			return
		}
		pipe(front, back)
	})
	out, err, _ := runAttackCLI(t, nil, "inspect", relay, "--token-file", a.tokenFile)
	if err == nil || !strings.Contains(out, "authentication failed") || !strings.Contains(out, "relay") {
		t.Errorf("converter through a relay: %v\n%s", err, out)
	}
	waitLog(t, a.log, "authentication failed")

	before := strings.Count(a.log.String(), "authentication failed")
	out, err, _ = runAttackCLI(t, nil, "inspect", relay, "--token-file", a.tokenFile, "--fingerprint", a.fingerprint)
	if err == nil || !strings.Contains(out, relayID.Fingerprint) || !strings.Contains(out, a.fingerprint) {
		t.Errorf("pinned converter through a relay: want an error naming both fingerprints, got %v\n%s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	if after := strings.Count(a.log.String(), "authentication failed"); after != before {
		t.Errorf("a pinned converter sent a proof through the relay (agent log: %s)", a.log)
	}
	// The same converter, pinned, straight to the agent: served.
	if out, err, _ := runAttackCLI(t, nil, "inspect", a.addr, "--token-file", a.tokenFile, "--fingerprint", a.fingerprint); err != nil {
		t.Errorf("pinned converter, no relay: %v\n%s", err, out)
	}
}

func waitLog(t *testing.T, log *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("agent log lacks %q:\n%s", want, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAttackBitFlip forwards the handshake untouched, then flips one byte of the converter's
// first request, as an attacker rewriting a request on the path would: the session breaks with
// an error on both sides instead of serving a changed request. The same proxy without the flip
// serves, so the test can fail.
func TestAttackBitFlip(t *testing.T) {
	a := startRealAgent(t)
	for _, flip := range []bool{false, true} {
		proxy := serveProxy(t, func(c net.Conn) {
			up, err := net.Dial("tcp", a.addr)
			if err != nil {
				c.Close()
				return
			}
			go func() { io.Copy(c, up); c.Close() }()
			flipRecord(up, c, flip)
			up.Close()
		})
		out, err, _ := runAttackCLI(t, nil, "inspect", proxy, "--token-file", a.tokenFile)
		if flip && err == nil {
			t.Errorf("a flipped byte went unnoticed:\n%s", out)
		}
		if !flip && err != nil {
			t.Errorf("the proxy without flipping: %v\n%s", err, out)
		}
	}
	waitLog(t, a.log, "bad record MAC")
}

// flipRecord copies TLS records from src to dst; with flip, it flips a byte in the fourth
// encrypted record (after Finished, the hello and the proof: the first request).
func flipRecord(dst io.Writer, src io.Reader, flip bool) {
	encrypted := 0
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		if hdr[0] == 0x17 {
			encrypted++
			if flip && encrypted == 4 && len(body) > 0 {
				body[len(body)/2] ^= 0x01
			}
		}
		if _, err := dst.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

// TestAttackWeakToken: agent and converter both refuse a guessable token and say how to make one.
func TestAttackWeakToken(t *testing.T) {
	const howto = "head -c 32 /dev/urandom | base64"
	weak := filepath.Join(t.TempDir(), "weak")
	writeFile(t, weak, "letmein123\n")
	out, err := exec.Command(testenv.AgentBinary(t), "--listen", "127.0.0.1:0", "--token-file", weak).CombinedOutput()
	if err == nil || !strings.Contains(string(out), howto) || !strings.Contains(string(out), "too weak") {
		t.Errorf("agent with a weak token: %v\n%s", err, out)
	}
	a := startRealAgent(t)
	o, err, _ := runAttackCLI(t, nil, "inspect", a.addr, "--token-file", weak)
	if err == nil || !strings.Contains(o, howto) {
		t.Errorf("converter with a weak token file: %v\n%s", err, o)
	}
	o, err, _ = runAttackCLI(t, []string{"VM2IMAGE_TOKEN=letmein123"}, "inspect", a.addr)
	if err == nil || !strings.Contains(o, howto) || !strings.Contains(o, "VM2IMAGE_TOKEN") {
		t.Errorf("converter with a weak VM2IMAGE_TOKEN: %v\n%s", err, o)
	}
	if o, err, _ := runAttackCLI(t, []string{"VM2IMAGE_TOKEN=" + attackToken}, "inspect", a.addr); err != nil {
		t.Errorf("converter with a strong VM2IMAGE_TOKEN: %v\n%s", err, o)
	}
}

// TestTransportMismatch: TLS meeting plaintext fails fast with a message that names the flag, on
// both sides, in both directions.
func TestTransportMismatch(t *testing.T) {
	plain := startRealAgent(t, "--insecure-plaintext")
	out, err, _ := runAttackCLI(t, nil, "inspect", plain.addr, "--token-file", plain.tokenFile)
	if err == nil || !strings.Contains(out, "agent speaks plaintext") || !strings.Contains(out, "--insecure-plaintext") {
		t.Errorf("TLS converter, plaintext agent: %v\n%s", err, out)
	}
	waitLog(t, plain.log, "the client speaks TLS, this agent runs with --insecure-plaintext")
	if out, err, _ := runAttackCLI(t, nil, "inspect", plain.addr, "--token-file", plain.tokenFile, "--insecure-plaintext"); err != nil {
		t.Errorf("plaintext on both sides: %v\n%s", err, out)
	}

	tlsAgent := startRealAgent(t)
	out, err, _ = runAttackCLI(t, nil, "inspect", tlsAgent.addr, "--token-file", tlsAgent.tokenFile, "--insecure-plaintext")
	if err == nil || !strings.Contains(out, "requires TLS") {
		t.Errorf("plaintext converter, TLS agent: %v\n%s", err, out)
	}
	waitLog(t, tlsAgent.log, "the client speaks plaintext (--insecure-plaintext), this agent requires TLS")
}

// TestVersionMismatch: a peer of another protocol version gets a message naming both versions.
func TestVersionMismatch(t *testing.T) {
	// A client of version 9 against the real agent.
	a := startRealAgent(t)
	c, err := tls.Dial("tcp", a.addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(append([]byte("VM2I\x00\x09"), make([]byte, 32)...))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(c)
	if !bytes.Contains(answer, []byte("the client speaks version 9, this agent speaks version 2")) {
		t.Errorf("agent's answer to version 9: %q", answer)
	}
	waitLog(t, a.log, "the client speaks version 9")

	// The real converter against an agent of version 9.
	id, _ := proto.NewIdentity()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{id.Cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.ReadFull(c, make([]byte, 38))
			c.Write(append([]byte("VM2I\x00\x09"), make([]byte, 32)...))
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	out, err, _ := runAttackCLI(t, nil, "inspect", ln.Addr().String(), "--token-file", a.tokenFile)
	if err == nil || !regexp.MustCompile(`this client speaks version 2, the agent speaks version 9`).MatchString(out) {
		t.Errorf("converter against version 9: %v\n%s", err, out)
	}
}
