package proto

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawConn serves a test handler over a net.Pipe and returns the client end after a valid
// handshake, for tests that speak frames by hand.
func rawConn(t *testing.T) (net.Conn, <-chan error, *logSink) {
	t.Helper()
	cc, done, log := serveOne(t, ServerOptions{})
	if err := clientHandshake(cc, testToken, nil); err != nil {
		t.Fatal(err)
	}
	return cc, done, log
}

// roundTrip sends a request frame and reads the response up to its End frame.
func roundTrip(t *testing.T, c net.Conn, id uint32, payload string) (string, error) {
	t.Helper()
	if err := WriteFrame(c, Frame{Type: FrameRequest, ID: id, Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
	var data strings.Builder
	for {
		f, err := ReadFrame(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if f.ID != id {
			t.Fatalf("%v frame for call %d, want %d", f.Type, f.ID, id)
		}
		switch f.Type {
		case FrameData:
			data.Write(f.Payload)
		case FrameEnd:
			status, _, bad := decodeStatus(f.Payload)
			if bad != nil {
				t.Fatal(bad)
			}
			return data.String(), status
		default:
			t.Fatalf("unexpected %v frame", f.Type)
		}
	}
}

func TestBadRequest(t *testing.T) {
	checkLeaks(t)
	c, done, _ := rawConn(t)
	for i, p := range []string{`{not json`, `{"op":""}`, `[1]`, `{"op":"small","args":`} {
		if _, err := roundTrip(t, c, uint32(i+1), p); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: got %v, want ErrBadRequest", p, err)
		}
	}
	if got, err := roundTrip(t, c, 99, `{"op":"small"}`); got != "ok" || err != nil {
		t.Errorf("valid request after bad ones: %q, %v", got, err)
	}
	c.Close()
	if err := wait(t, done); err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}

func TestProtocolViolations(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name string
		send []byte
		want string
	}{
		{"unknown type", header(FrameType(0x42), 1, 0), "unknown frame type"},
		{"oversized", header(FrameRequest, 1, 1<<30), "frame too large"},
		{"truncated", append(header(FrameRequest, 1, 100), `{"op"`...), "unexpected EOF"},
		{"data from client", header(FrameData, 1, 0), "unexpected data frame"},
		{"two requests at once", append(frameBytes(FrameRequest, 1, `{"op":"forever"}`),
			frameBytes(FrameRequest, 2, `{"op":"small"}`)...), "in progress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, done, log := rawConn(t)
			go func() {
				c.Write(tt.send)
				if tt.name == "truncated" {
					c.Close()
				}
				io.Copy(io.Discard, c)
			}()
			err := wait(t, done)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ServeConn: %v, want %q", err, tt.want)
			}
			if !strings.Contains(log.String(), "closing connection") {
				t.Errorf("log: %q", log)
			}
		})
	}
}

func frameBytes(t FrameType, id uint32, payload string) []byte {
	return append(header(t, id, uint32(len(payload))), payload...)
}

func TestStaleCancelIgnored(t *testing.T) {
	checkLeaks(t)
	c, _, _ := rawConn(t)
	defer c.Close()
	WriteFrame(c, Frame{Type: FrameCancel, ID: 77})
	if got, err := roundTrip(t, c, 78, `{"op":"small"}`); got != "ok" || err != nil {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestMaxConns(t *testing.T) {
	checkLeaks(t)
	log := &logSink{}
	addr := startTCP(t, NewServer(newTestHandler(), ServerOptions{Token: testToken, MaxConns: 2, Logf: log.logf}))
	ctx := context.Background()
	var clients []*Client
	for range 2 {
		c, err := Dial(ctx, addr, testToken, ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	_, err := Dial(ctx, addr, testToken, ClientOptions{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("third client: %v, want ErrUnavailable", err)
	}
	waitFor(t, 5*time.Second, "the refusal in the log", func() bool { return strings.Contains(log.String(), "busy") })
	for _, c := range clients {
		if err := c.CallJSON(ctx, "echo", 1, nil); err != nil {
			t.Errorf("admitted client: %v", err)
		}
	}
	clients[0].Close()
	waitFor(t, 5*time.Second, "a free slot", func() bool {
		c, err := Dial(ctx, addr, testToken, ClientOptions{})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	clients[1].Close()
}

func TestMaxRate(t *testing.T) {
	checkLeaks(t)
	const rate, n = 4 << 20, 2 << 20
	c, _ := startPipe(t, newTestHandler(), ServerOptions{MaxRate: rate})
	start := time.Now()
	rc, err := c.Call(context.Background(), "stream", n)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPattern(rc, n); err != nil {
		t.Fatal(err)
	}
	// The bucket starts with rate/10 bytes; the rest flows at rate.
	want := time.Duration(n-rate/10) * time.Second / rate
	if d := time.Since(start); d < want*9/10 || d > want*5 {
		t.Errorf("%d bytes at %d B/s took %v, want about %v", n, rate, d, want)
	}
}

func TestLimiter(t *testing.T) {
	if newLimiter(0) != nil {
		t.Error("rate 0 limits")
	}
	var l *limiter
	if err := l.wait(context.Background(), 1<<30); err != nil {
		t.Error(err)
	}
	l = newLimiter(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx, 10<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled wait: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	checkLeaks(t)
	c, env := startPipe(t, newTestHandler(), ServerOptions{IdleTimeout: 100 * time.Millisecond})
	// A call that runs longer than the idle timeout does not make its connection idle.
	var got string
	if err := c.CallJSON(context.Background(), "slow", nil, &got); err != nil || got != "done" {
		t.Fatalf("slow call: %q, %v", got, err)
	}
	if err := wait(t, env.done); err != nil {
		t.Errorf("ServeConn: %v", err)
	}
	if !strings.Contains(env.log.String(), "idle") {
		t.Errorf("server log: %q", env.log)
	}
	env.done <- nil // for the cleanup
	if _, err := c.Call(context.Background(), "small", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call on an idled-out connection: %v", err)
	}
}

func TestServeShutdown(t *testing.T) {
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHandler()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(h, ServerOptions{Token: testToken}).Serve(ctx, ln) }()
	c, err := Dial(context.Background(), ln.Addr().String(), testToken, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.Call(context.Background(), "forever", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(rc, make([]byte, 1<<20))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("stream cut by shutdown: %v", err)
	}
}
