package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/wire"
)

// TestAttackPreAuthFlood keeps 300 unauthenticated connections going against the real agent, from
// six loopback addresses other than the converter's (127.0.0.2 to 127.0.0.7), reopening each one
// the agent drops after 100 ms: a third idle plain TCP, a third stopped in the middle of the TLS
// handshake, a third trickling a hello one byte a second. Real `vm2image inspect` runs meanwhile
// must all succeed.
func TestAttackPreAuthFlood(t *testing.T) {
	vm2imageBinary(t) // built before the flood starts
	a := startRealAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var open, dialed atomic.Int64
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%6))}
			for ctx.Err() == nil {
				d := net.Dialer{LocalAddr: src}
				c, err := d.DialContext(ctx, "tcp", a.addr)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				dialed.Add(1)
				open.Add(1)
				holdOpen(ctx, c, i%3)
				open.Add(-1)
				c.Close()
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for dialed.Load() < 600 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for round := range 3 {
		start := time.Now()
		out, err, _ := runAttackCLI(t, nil, "inspect", a.addr, "--token-file", a.tokenFile, "--fingerprint", a.fingerprint)
		if err != nil || !strings.Contains(out, "Debian GNU/Linux 12") {
			t.Fatalf("inspect %d under the flood (%d attack connections open): %v\n%s", round, open.Load(), err, out)
		}
		t.Logf("inspect %d: %v, %d attack connections open, %d dialed so far", round, time.Since(start), open.Load(), dialed.Load())
	}
	if dialed.Load() < 600 {
		t.Errorf("only %d attack connections were made", dialed.Load())
	}
}

// holdOpen keeps c in its pre-authentication state until the agent drops it or ctx ends.
func holdOpen(ctx context.Context, c net.Conn, kind int) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	switch kind {
	case 0: // idle
		io.Copy(io.Discard, c)
	case 1: // the ClientHello, then silence
		tc := tls.Client(stallAfterWrite{c}, &tls.Config{InsecureSkipVerify: true})
		tc.Handshake()
		io.Copy(io.Discard, c)
	case 2: // a plaintext hello, one byte a second
		go io.Copy(io.Discard, c)
		for _, b := range []byte("VM2I\x00\x02" + strings.Repeat("x", 32)) {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// stallAfterWrite sends what the TLS client writes and never reads its peer's answer.
type stallAfterWrite struct{ net.Conn }

func (s stallAfterWrite) Read([]byte) (int, error) {
	var b [1]byte
	for { // wait for the connection to end, reading nothing the handshake could use
		if _, err := s.Conn.Read(b[:]); err != nil {
			return 0, err
		}
	}
}

// hostileAgent serves the real proto server with a strong token and handler h; it returns the
// address and fingerprint.
func hostileAgent(t *testing.T, h proto.HandlerFunc) (addr, fp string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proto.NewServer(h, proto.ServerOptions{Token: []byte(attackToken)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String(), srv.Fingerprint()
}

// endless writes prefix, then unit forever, until the client goes away.
func endless(w io.Writer, prefix, unit string) error {
	if _, err := io.WriteString(w, prefix); err != nil {
		return err
	}
	chunk := []byte(strings.Repeat(unit, (64<<10)/len(unit)+1))
	for {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
}

// TestAttackHostileAgent: an agent that holds the token answers with endless JSON (a string, an
// array of objects, after a valid info): the real converter stops with an error naming the
// bound, and its peak RSS stays under 512 MiB.
func TestAttackHostileAgent(t *testing.T) {
	tok := t.TempDir() + "/token"
	writeFile(t, tok, attackToken+"\n")
	info := `{"os":{"id":"debian","version_id":"12","pretty_name":"Debian GNU/Linux 12 (bookworm)"},"arch":"amd64","root":"/","agent_version":"x"}`
	for _, tc := range []struct {
		name    string
		h       proto.HandlerFunc
		wantErr bool
	}{
		{"endless string in info", func(_ context.Context, req proto.Request, w io.Writer) error {
			return endless(w, `{"hostname":"`, "a")
		}, true},
		{"endless array in info", func(_ context.Context, req proto.Request, w io.Writer) error {
			return endless(w, `{"mounts":[`, `{"path":"/x","type":"ext4"},`)
		}, true},
		{"endless packages", func(_ context.Context, req proto.Request, w io.Writer) error {
			switch req.Op {
			case wire.OpInfo:
				_, err := io.WriteString(w, info)
				return err
			case wire.OpPackages:
			default:
				_, err := io.WriteString(w, "[]")
				return err
			}
			return endless(w, `{"manager":"dpkg","packages":[`, `{"name":"p","version":"1","arch":"amd64","depends":["q","r"]},`)
		}, false}, // inspect reports a VM without a readable package database and goes on
		{"endless processes", func(_ context.Context, req proto.Request, w io.Writer) error {
			switch req.Op {
			case wire.OpInfo:
				_, err := io.WriteString(w, info)
				return err
			case wire.OpProcesses:
				return endless(w, `[`, `{"pid":1,"argv":["x","y"],"env":{"A":"b"}},`)
			}
			_, err := io.WriteString(w, `{"manager":"dpkg","packages":[]}`)
			return err
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, fp := hostileAgent(t, tc.h)
			out, err, rss := runAttackCLI(t, nil, "inspect", addr, "--token-file", tok, "--fingerprint", fp)
			t.Logf("exit %v, peak RSS %d MiB", err, rss>>20)
			if tc.wantErr != (err != nil) || !strings.Contains(out, "answer too large") {
				t.Errorf("want a clear error about the answer's size, got %v:\n%.2000s", err, out)
			}
			if rss == 0 || rss >= 512<<20 {
				t.Errorf("peak RSS %d bytes, want (0, 512 MiB)", rss)
			}
		})
	}
}

// TestAttackHostileAgentTrailer: an agent holding the token ends a filesystem stream with a
// trailer of 600 KiB (the frame allows 1 MiB): the real `vm2image export` refuses it by name.
func TestAttackHostileAgentTrailer(t *testing.T) {
	tok := t.TempDir() + "/token"
	writeFile(t, tok, attackToken+"\n")
	addr, fp := hostileAgent(t, func(ctx context.Context, req proto.Request, w io.Writer) error {
		proto.SetTrailer(ctx, []byte(`{"problems":[{"path":"`+strings.Repeat("p", 600<<10)+`"}]}`))
		_, err := w.Write(make([]byte, 1024)) // the end of an empty tar
		return err
	})
	out, err, rss := runAttackCLI(t, nil, "export", addr, "--token-file", tok, "--fingerprint", fp, "--wire-compression", "none", "-o", t.TempDir()+"/vm.tar")
	if err == nil || !strings.Contains(out, "decoding trailer: answer too large") {
		t.Errorf("want an error naming the trailer's size, got %v:\n%.2000s", err, out)
	}
	if rss >= 512<<20 {
		t.Errorf("peak RSS %d bytes", rss)
	}
}
