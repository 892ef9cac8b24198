package proto

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var testToken = []byte("correct horse battery staple")

// checkLeaks fails t if goroutines started during the test outlive it. Call it first, so that
// its cleanup runs after every other one.
func checkLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// logSink collects a server's log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pipeEnv is one server connection over net.Pipe.
type pipeEnv struct {
	log    *logSink
	cancel context.CancelFunc // kills the server side
	done   chan error         // ServeConn's result
}

// startPipe serves h over a net.Pipe and returns a client connected to it. Everything is closed
// when the test ends.
func startPipe(t testing.TB, h Handler, opts ServerOptions) (*Client, *pipeEnv) {
	t.Helper()
	env := &pipeEnv{log: &logSink{}, done: make(chan error, 1)}
	if opts.Token == nil {
		opts.Token = testToken
	}
	opts.Logf = env.log.logf
	cc, sc := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	env.cancel = cancel
	srv := NewServer(h, opts)
	go func() { env.done <- srv.ServeConn(ctx, sc) }()
	c, err := NewClient(context.Background(), cc, testToken, ClientOptions{})
	if err != nil {
		cancel()
		<-env.done
		t.Fatalf("NewClient: %v (server log: %s)", err, env.log)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		select {
		case <-env.done:
		case <-time.After(5 * time.Second):
			t.Error("ServeConn did not return")
		}
	})
	return c, env
}

// startTCP runs srv on a loopback listener until the test ends and returns its address.
func startTCP(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// pattern is the content of test streams: byte o of a stream is pattern[o%len(pattern)]. The
// length is prime so that no frame or chunk size lines up with it.
var pattern = func() []byte {
	b := make([]byte, 1_000_003)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}()

// patternAt fills p with the stream content at offset off.
func patternAt(off int64, p []byte) {
	for len(p) > 0 {
		n := copy(p, pattern[off%int64(len(pattern)):])
		p, off = p[n:], off+int64(n)
	}
}

// writePattern writes n bytes of stream content to w in chunks of chunk bytes.
func writePattern(w io.Writer, n int64, chunk int, progress func(int64)) error {
	buf := make([]byte, chunk)
	for off := int64(0); off < n; {
		k := int(min(int64(chunk), n-off))
		patternAt(off, buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		off += int64(k)
		if progress != nil {
			progress(off)
		}
	}
	return nil
}

// checkPattern reads r to its end and checks that it is exactly n bytes of stream content.
func checkPattern(r io.Reader, n int64) error {
	buf := make([]byte, 200_000)
	want := make([]byte, len(buf))
	var off int64
	for {
		k, err := r.Read(buf[:rand.IntN(len(buf))+1])
		if k > 0 {
			patternAt(off, want[:k])
			if !bytes.Equal(buf[:k], want[:k]) {
				return fmt.Errorf("content differs in [%d, %d)", off, off+int64(k))
			}
			off += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", off, err)
		}
	}
	if off != n {
		return fmt.Errorf("read %d bytes, want %d", off, n)
	}
	return nil
}

// testHandler serves the operations the tests use.
//
//	small: writes "ok"
//	echo: writes its arguments back
//	stream {"n": N}: writes N bytes of pattern content
//	slow: writes "done" (JSON) after 250 ms
//	forever: writes pattern content until canceled, then reports ctx.Err() on canceled
type testHandler struct {
	canceled chan error
}

func newTestHandler() *testHandler { return &testHandler{canceled: make(chan error, 16)} }

func (h *testHandler) Serve(ctx context.Context, req Request, w io.Writer) error {
	switch req.Op {
	case "small":
		_, err := io.WriteString(w, "ok")
		return err
	case "echo":
		_, err := w.Write(req.Args)
		return err
	case "stream":
		var n int64
		fmt.Sscan(string(req.Args), &n)
		return writePattern(w, n, 32<<10, nil)
	case "slow":
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err := io.WriteString(w, `"done"`)
		return err
	case "forever":
		err := writePattern(w, 1<<62, 48<<10, nil)
		select {
		case h.canceled <- ctx.Err():
		default:
		}
		return err
	}
	return fmt.Errorf("%w %q", ErrUnknownOp, req.Op)
}
