package proto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCallJSON(t *testing.T) {
	checkLeaks(t)
	c, _ := startPipe(t, newTestHandler(), ServerOptions{})
	ctx := context.Background()
	in := map[string]any{"path": "/etc/ssh/sshd_config", "n": 3.5, "list": []any{"a", "é"}}
	var out map[string]any
	if err := c.CallJSON(ctx, "echo", in, &out); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Errorf("got %v, want %v", out, in)
	}
	raw := json.RawMessage(`[1,2,3]`)
	var nums []int
	if err := c.CallJSON(ctx, "echo", raw, &nums); err != nil || len(nums) != 3 {
		t.Errorf("raw args: %v, %v", nums, err)
	}
	if err := c.CallJSON(ctx, "small", nil, nil); err != nil {
		t.Errorf("discarding: %v", err)
	}
	var v any
	if err := c.CallJSON(ctx, "small", nil, &v); err == nil || !strings.Contains(err.Error(), "decoding small response") {
		t.Errorf("bad JSON: %v", err)
	}
	if err := c.CallJSON(ctx, "echo", func() {}, nil); err == nil {
		t.Error("unencodable arguments accepted")
	}
}

func TestLargeStreamBackpressure(t *testing.T) {
	checkLeaks(t)
	const total, ringSize = 64 << 20, 1 << 20
	var produced atomic.Int64
	rings := make(chan *Ring, 1)
	h := HandlerFunc(func(ctx context.Context, req Request, w io.Writer) error {
		rings <- w.(*Ring)
		return writePattern(w, total, 100_003, produced.Store)
	})
	c, _ := startPipe(t, h, ServerOptions{RingSize: ringSize})
	rc, err := c.Call(context.Background(), "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ring := <-rings
	// Nobody reads yet: the handler must stall once the ring and the few frames in flight are
	// full, far short of the whole response.
	var last int64 = -1
	waitFor(t, 5*time.Second, "the handler to stall", func() bool {
		time.Sleep(30 * time.Millisecond)
		p := produced.Load()
		stalled := p == last
		last = p
		return stalled
	})
	if n := ring.Len(); n != ringSize {
		t.Errorf("stalled handler with %d bytes in a ring of %d", n, ringSize)
	}
	if p := produced.Load(); p > ringSize+1<<20 {
		t.Errorf("handler produced %d bytes ahead of the reader; ring is %d", p, ringSize)
	}
	if err := checkPattern(rc, total); err != nil {
		t.Fatal(err)
	}
	if p := ring.peakLen(); p > ringSize {
		t.Errorf("ring held %d bytes, capacity %d", p, ringSize)
	}
}

func TestHandlerErrors(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		err  error
		want error
		code Code
	}{
		{fmt.Errorf("opening /etc/x: %w", fs.ErrNotExist), ErrNotFound, CodeNotFound},
		{fmt.Errorf("reading /etc/shadow: %w", fs.ErrPermission), ErrPermission, CodePermission},
		{fmt.Errorf("%w: ../../etc", ErrOutsideRoot), ErrOutsideRoot, CodeOutsideRoot},
		{fmt.Errorf("%w: level 99", ErrBadRequest), ErrBadRequest, CodeBadRequest},
		{fmt.Errorf("dpkg: %w", ErrUnavailable), ErrUnavailable, CodeUnavailable},
		{errors.New("disk on fire"), nil, CodeInternal},
	}
	var i atomic.Int32
	h := HandlerFunc(func(ctx context.Context, req Request, w io.Writer) error {
		io.WriteString(w, "partial")
		return tests[i.Load()].err
	})
	c, _ := startPipe(t, h, ServerOptions{})
	for j, tt := range tests {
		i.Store(int32(j))
		rc, err := c.Call(context.Background(), "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if string(got) != "partial" {
			t.Errorf("%v: data %q", tt.err, got)
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != tt.code || pe.Msg != tt.err.Error() {
			t.Errorf("%v: got %#v, want code %v", tt.err, err, tt.code)
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%v: errors.Is(%v) false", tt.err, tt.want)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%v: coded error looks like an EOF", tt.err)
		}
	}
}

func TestUnknownOp(t *testing.T) {
	checkLeaks(t)
	bare := HandlerFunc(func(ctx context.Context, req Request, w io.Writer) error { return ErrUnknownOp })
	for _, h := range []Handler{nil, bare} {
		c, _ := startPipe(t, h, ServerOptions{})
		err := c.CallJSON(context.Background(), "frobnicate", nil, nil)
		if !errors.Is(err, ErrUnknownOp) || !strings.Contains(err.Error(), `"frobnicate"`) {
			t.Errorf("got %v, want ErrUnknownOp naming the op", err)
		}
	}
}

func TestTrailer(t *testing.T) {
	checkLeaks(t)
	h := HandlerFunc(func(ctx context.Context, req Request, w io.Writer) error {
		io.WriteString(w, "body")
		SetTrailer(ctx, []byte(`{"files":3}`))
		if req.Op == "fail" {
			return ErrNotFound
		}
		return nil
	})
	c, _ := startPipe(t, h, ServerOptions{})
	rc, err := c.Call(context.Background(), "ok", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	tr := rc.(interface{ Trailer() []byte }).Trailer()
	if err != nil || string(body) != "body" || string(tr) != `{"files":3}` {
		t.Errorf("got %q, trailer %q, %v", body, tr, err)
	}
	SetTrailer(context.Background(), []byte("ignored outside a handler"))
}

func TestConcurrentCallsWait(t *testing.T) {
	checkLeaks(t)
	c, _ := startPipe(t, newTestHandler(), ServerOptions{RingSize: 32 << 10})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			rc, err := c.Call(context.Background(), "stream", 1<<20)
			if err != nil {
				t.Error(err)
				return
			}
			defer rc.Close()
			if err := checkPattern(rc, 1<<20); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestCancelByClose(t *testing.T) {
	checkLeaks(t)
	h := newTestHandler()
	c, _ := startPipe(t, h, ServerOptions{RingSize: 256 << 10})
	ctx := context.Background()
	for range 3 {
		rc, err := c.Call(ctx, "forever", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if _, err := rc.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
			t.Errorf("Read after Close: %v", err)
		}
		select {
		case err := <-h.canceled:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("handler saw %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("handler never saw the cancellation")
		}
		rc, err = c.Call(ctx, "stream", 3<<20)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPattern(rc, 3<<20); err != nil {
			t.Fatalf("call after a cancel: %v", err)
		}
	}
}

func TestCancelByContext(t *testing.T) {
	checkLeaks(t)
	h := newTestHandler()
	c, _ := startPipe(t, h, ServerOptions{RingSize: 256 << 10})
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := c.Call(ctx, "forever", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 512<<10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel: %v", err)
	}
	rc.Close()
	<-h.canceled
	if err := c.CallJSON(context.Background(), "echo", 5, nil); err != nil {
		t.Fatalf("call after a cancel: %v", err)
	}
	if _, err := c.Call(ctx, "small", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Call with a canceled context: %v", err)
	}
}

func TestConnKilledMidStream(t *testing.T) {
	checkLeaks(t)
	c, env := startPipe(t, newTestHandler(), ServerOptions{})
	rc, err := c.Call(context.Background(), "stream", 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	env.cancel() // the agent goes away
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := c.Call(context.Background(), "small", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call on a dead connection: %v", err)
	}
}

func TestHandlerPanic(t *testing.T) {
	checkLeaks(t)
	h := HandlerFunc(func(ctx context.Context, req Request, w io.Writer) error {
		if req.Op == "boom" {
			var m map[string]int
			m["x"] = 1
		}
		_, err := io.WriteString(w, "fine")
		return err
	})
	c, env := startPipe(t, h, ServerOptions{})
	err := c.CallJSON(context.Background(), "boom", nil, nil)
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeInternal || !strings.Contains(pe.Msg, "panicked") {
		t.Fatalf("got %v", err)
	}
	rc, err := c.Call(context.Background(), "after", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rc); string(b) != "fine" || err != nil {
		t.Fatalf("call after a panic: %q, %v", b, err)
	}
	if !strings.Contains(env.log.String(), "assignment to entry in nil map") {
		t.Errorf("server log: %s", env.log)
	}
}

// TestCloseRace closes a Client while several goroutines call through it and read, and closes
// streams while they are being read.
func TestCloseRace(t *testing.T) {
	checkLeaks(t)
	for i := range 40 {
		c, _ := startPipe(t, newTestHandler(), ServerOptions{RingSize: 64 << 10})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() { raceCalls(c, g) })
		}
		wg.Go(func() {
			time.Sleep(time.Duration(i*50) * time.Microsecond)
			c.Close()
		})
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: deadlock", i)
		}
		if _, err := c.Call(context.Background(), "small", nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Call after Close: %v", err)
		}
	}
}

func raceCalls(c *Client, g int) {
	ops := []string{"small", "forever", "stream"}
	for k := range 4 {
		rc, err := c.Call(context.Background(), ops[(g+k)%3], 100_000)
		if err != nil {
			return
		}
		switch (g + k) % 3 {
		case 0:
			io.Copy(io.Discard, rc)
		case 1: // close while another goroutine reads
			go func() {
				time.Sleep(time.Millisecond)
				rc.Close()
			}()
			io.Copy(io.Discard, rc)
		case 2:
			io.ReadFull(rc, make([]byte, 1000))
		}
		rc.Close()
		rc.Close()
	}
}
