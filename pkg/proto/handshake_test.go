package proto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// plain is how the tests that speak the handshake by hand connect.
var plain = ClientOptions{Plaintext: true}

// serveOne runs ServeConn for one end of a net.Pipe and returns the other end and the result.
func serveOne(t *testing.T, opts ServerOptions) (net.Conn, <-chan error, *logSink) {
	t.Helper()
	log := &logSink{}
	if opts.Token == nil {
		opts.Token = testToken
	}
	opts.Logf = log.logf
	opts.Plaintext = true // these tests speak the handshake by hand
	cc, sc := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- NewServer(newTestHandler(), opts).ServeConn(context.Background(), sc) }()
	t.Cleanup(func() { cc.Close() })
	return cc, done, log
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
		return nil
	}
}

func TestHandshakeOK(t *testing.T) {
	checkLeaks(t)
	c, _ := startPipe(t, newTestHandler(), ServerOptions{})
	var got string
	rc, err := c.Call(context.Background(), "small", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	got = string(b)
	if err != nil || got != "ok" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestHandshakeWrongToken(t *testing.T) {
	checkLeaks(t)
	cc, done, log := serveOne(t, ServerOptions{})
	_, err := NewClient(context.Background(), cc, []byte("wrong"), plain)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "wrong token") {
		t.Fatalf("client: %v, want ErrAuth naming the wrong token", err)
	}
	if err := wait(t, done); !errors.Is(err, ErrAuth) {
		t.Fatalf("server: %v", err)
	}
	if !strings.Contains(log.String(), "authentication failed") {
		t.Errorf("server log lacks the reason: %q", log)
	}
}

// TestWrongTokenKeepsServing: a bad client does not disturb a good one in the middle of a call.
func TestWrongTokenKeepsServing(t *testing.T) {
	checkLeaks(t)
	log := &logSink{}
	addr := startTCP(t, NewServer(newTestHandler(), ServerOptions{Token: testToken, Logf: log.logf, RingSize: 64 << 10}))
	ctx := context.Background()
	good, err := Dial(ctx, addr, testToken, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	const n = 8 << 20
	rc, err := good.Call(ctx, "stream", n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := Dial(ctx, addr, []byte("guess"), ClientOptions{}); !errors.Is(err, ErrAuth) {
			t.Fatalf("bad client: %v", err)
		}
	}
	if err := checkPattern(io.MultiReader(patternReader(0, 1<<20), rc), n); err != nil {
		t.Fatalf("good client: %v", err)
	}
	waitFor(t, 5*time.Second, "three failures in the log", func() bool {
		return strings.Count(log.String(), "authentication failed") == 3
	})
}

// patternReader returns n bytes of stream content starting at off.
func patternReader(off, n int64) io.Reader {
	b := make([]byte, n)
	patternAt(off, b)
	return strings.NewReader(string(b))
}

func TestHandshakeNoToken(t *testing.T) {
	checkLeaks(t)
	if _, err := Dial(context.Background(), "127.0.0.1:1", nil, ClientOptions{}); !errors.Is(err, ErrAuth) {
		t.Errorf("Dial without a token: %v", err)
	}
	cc, sc := net.Pipe()
	if _, err := NewClient(context.Background(), cc, nil, plain); !errors.Is(err, ErrAuth) {
		t.Errorf("NewClient without a token: %v", err)
	}
	srv := NewServer(nil, ServerOptions{})
	if err := srv.ServeConn(context.Background(), sc); !errors.Is(err, ErrAuth) {
		t.Errorf("ServeConn without a token: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.Serve(context.Background(), ln); !errors.Is(err, ErrAuth) {
		t.Errorf("Serve without a token: %v", err)
	}
}

// fakeAgent answers a client's hello with reply, then sends verdict (if any).
func fakeAgent(t *testing.T, reply []byte, verdict func(io.ReadWriter)) net.Conn {
	cc, sc := net.Pipe()
	go func() {
		defer sc.Close()
		if _, err := io.ReadFull(sc, make([]byte, helloSize)); err != nil {
			return
		}
		sc.Write(reply)
		if verdict != nil {
			verdict(sc)
		}
	}()
	t.Cleanup(func() { cc.Close() })
	return cc
}

func helloBytes(magic string, version uint16) []byte {
	b := append([]byte(magic), 0, 0)
	binary.BigEndian.PutUint16(b[len(magic):], version)
	return append(b, make([]byte, nonceSize)...)
}

func TestHandshakeWrongMagic(t *testing.T) {
	checkLeaks(t)
	cc := fakeAgent(t, []byte("SSH-2.0-OpenSSH_9.2p1 Debian\r\n"), nil)
	_, err := NewClient(context.Background(), cc, testToken, plain)
	if err == nil || !strings.Contains(err.Error(), "not a vm2image agent") {
		t.Errorf("client talking to sshd: %v", err)
	}

	cc, done, log := serveOne(t, ServerOptions{})
	go cc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	err = wait(t, done)
	if err == nil || !strings.Contains(err.Error(), "not a vm2image client") {
		t.Errorf("server talking to curl: %v", err)
	}
	if !strings.Contains(log.String(), "not a vm2image client") {
		t.Errorf("server log: %q", log)
	}
}

func TestHandshakeVersionMismatch(t *testing.T) {
	checkLeaks(t)
	cc := fakeAgent(t, helloBytes(Magic, Version+1), nil)
	_, err := NewClient(context.Background(), cc, testToken, plain)
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), fmt.Sprintf("client speaks version %d", Version)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("agent speaks version %d", Version+1)) {
		t.Errorf("client: %v", err)
	}

	// A client of another version gets the server's hello, then a coded refusal.
	cc, done, _ := serveOne(t, ServerOptions{})
	go cc.Write(helloBytes(Magic, 7))
	v, _, err := readHello(cc, "agent")
	if err != nil || v != Version {
		t.Fatalf("server hello: version %d, %v", v, err)
	}
	f, err := ReadFrame(cc, nil)
	if err != nil || f.Type != FrameRefuse {
		t.Fatalf("verdict: %v, %v", f.Type, err)
	}
	status, _, _ := decodeStatus(f.Payload)
	if !errors.Is(status, ErrVersion) || !strings.Contains(status.Error(), "version 7") {
		t.Errorf("refusal: %v", status)
	}
	if err := wait(t, done); !errors.Is(err, ErrVersion) {
		t.Errorf("server: %v", err)
	}
}

func TestHandshakeServerMustProve(t *testing.T) {
	checkLeaks(t)
	// An impostor that does not hold the token accepts anyone.
	cc := fakeAgent(t, helloBytes(Magic, Version), func(rw io.ReadWriter) {
		if _, err := ReadFrame(rw, nil); err == nil {
			WriteFrame(rw, Frame{Type: FrameAuthOK, Payload: make([]byte, proofSize)})
		}
	})
	_, err := NewClient(context.Background(), cc, testToken, plain)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "prove") {
		t.Errorf("client: %v", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	checkLeaks(t)
	for _, sent := range [][]byte{nil, []byte(Magic), helloBytes(Magic, Version)} {
		cc, done, log := serveOne(t, ServerOptions{HandshakeTimeout: 50 * time.Millisecond})
		go func() {
			cc.Write(sent)
			io.Copy(io.Discard, cc) // swallow the server's hello, never send the proof
		}()
		start := time.Now()
		err := wait(t, done)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("after %d bytes: %v", len(sent), err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("timeout took %v", d)
		}
		if !strings.Contains(log.String(), "timeout") {
			t.Errorf("server log: %q", log)
		}
	}
}

func TestClientHandshakeContext(t *testing.T) {
	checkLeaks(t)
	// An agent that reads the hello and never answers.
	cc := fakeAgent(t, nil, func(rw io.ReadWriter) { io.Copy(io.Discard, rw) })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NewClient(ctx, cc, testToken, plain)
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}
