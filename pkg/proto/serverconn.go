package proto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errCanceledWrite is what a handler's writes fail with once its request is canceled.
var errCanceledWrite = fmt.Errorf("%w: %w", ErrCanceled, context.Canceled)

// serverConn serves the requests of one authenticated connection, one at a time. Its reader loop
// (serve) reads Request and Cancel frames; each request runs the handler in one goroutine and
// pumps its output from the ring to the connection in another.
type serverConn struct {
	s    *Server
	c    net.Conn
	peer string

	wmu     sync.Mutex // serializes frame writes
	wbuf    []byte     // a data frame being written: header and payload
	ringBuf []byte     // the ring's memory, allocated on the first request and reused

	mu     sync.Mutex
	active *request
	fail   error // the first write error; the connection is then closed
	wg     sync.WaitGroup
}

type request struct {
	id       uint32
	op       string
	cancel   context.CancelFunc
	ring     *Ring
	trailer  *trailerBox
	canceled atomic.Bool
}

func (sc *serverConn) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		sc.c.Close()
		sc.wg.Wait()
	}()
	sc.armIdle()
	buf := make([]byte, 4<<10)
	for {
		f, err := ReadFrame(sc.c, buf)
		if err == nil {
			err = sc.handle(ctx, f)
		}
		if err != nil {
			return sc.ended(ctx, err)
		}
	}
}

// ended logs why the connection ends and returns the reason, nil for an ordinary end.
func (sc *serverConn) ended(ctx context.Context, err error) error {
	sc.mu.Lock()
	if sc.fail != nil {
		err = sc.fail
	}
	sc.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		sc.s.opts.Logf("proto: %s: closing idle connection after %v", sc.peer, sc.s.opts.IdleTimeout)
		return nil
	}
	sc.s.opts.Logf("proto: %s: closing connection: %v", sc.peer, err)
	return err
}

func (sc *serverConn) armIdle() {
	sc.c.SetReadDeadline(time.Now().Add(sc.s.opts.IdleTimeout))
}

func (sc *serverConn) handle(ctx context.Context, f Frame) error {
	switch f.Type {
	case FrameRequest:
		return sc.start(ctx, f)
	case FrameCancel:
		sc.mu.Lock()
		r := sc.active
		sc.mu.Unlock()
		if r != nil && r.id == f.ID {
			r.canceled.Store(true)
			r.cancel()
			r.ring.CloseRead(errCanceledWrite)
		}
		return nil
	}
	return fmt.Errorf("unexpected %v frame from the client", f.Type)
}

func (sc *serverConn) start(ctx context.Context, f Frame) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.active != nil {
		return fmt.Errorf("request %d sent while request %d is in progress", f.ID, sc.active.id)
	}
	sc.c.SetReadDeadline(time.Time{})
	req, perr := parseRequest(f.Payload)
	if sc.ringBuf == nil {
		sc.ringBuf = make([]byte, sc.s.opts.RingSize)
		sc.wbuf = make([]byte, headerSize+maxDataFrame)
	}
	r := &request{id: f.ID, op: req.Op, ring: newRingBuf(sc.ringBuf), trailer: &trailerBox{}}
	ctx, r.cancel = context.WithCancel(context.WithValue(ctx, trailerKey{}, r.trailer))
	sc.active = r
	sc.wg.Add(1)
	go sc.run(ctx, r, req, perr)
	return nil
}

func parseRequest(p []byte) (Request, error) {
	var req Request
	if err := json.Unmarshal(p, &req); err != nil {
		return req, fmt.Errorf("%w: decoding request: %v", ErrBadRequest, err)
	}
	if req.Op == "" {
		return req, fmt.Errorf("%w: request names no op", ErrBadRequest)
	}
	return req, nil
}

// run serves one request: the handler fills the ring, pump drains it into data frames, and an
// End frame carries the outcome.
func (sc *serverConn) run(ctx context.Context, r *request, req Request, perr error) {
	defer sc.wg.Done()
	defer r.cancel()
	done := make(chan error, 1)
	if perr != nil {
		r.ring.CloseWithError(perr)
		done <- perr
	} else {
		go func() {
			err := sc.callHandler(ctx, req, r.ring)
			r.ring.CloseWithError(err)
			done <- err
		}()
	}
	werr := sc.pump(ctx, r)
	herr := <-done
	r.ring.retire()
	sc.mu.Lock()
	sc.active = nil
	sc.mu.Unlock()
	if werr == nil {
		sc.armIdle()
		werr = sc.writeFrame(Frame{Type: FrameEnd, ID: r.id, Payload: sc.endPayload(r, herr)})
	}
	if werr != nil {
		sc.broken(werr)
	}
}

// callHandler runs the handler, turning a panic into an internal error.
func (sc *serverConn) callHandler(ctx context.Context, req Request, w io.Writer) (err error) {
	defer func() {
		if v := recover(); v != nil {
			sc.s.opts.Logf("proto: %s: handler panicked serving %q: %v\n%s", sc.peer, req.Op, v, debug.Stack())
			err = fmt.Errorf("internal error: handler panicked serving %q: %v", req.Op, v)
		}
	}()
	return sc.s.h.Serve(ctx, req, w)
}

// pump sends what the handler writes as data frames of at most maxDataFrame bytes, until the
// handler is done or the request is canceled. It returns only connection write errors.
func (sc *serverConn) pump(ctx context.Context, r *request) error {
	for {
		n, err := r.ring.Read(sc.wbuf[headerSize:])
		if n > 0 && !r.canceled.Load() {
			if sc.s.limiter.wait(ctx, n) != nil {
				r.canceled.Store(true)
				r.ring.CloseRead(errCanceledWrite)
				continue
			}
			putHeader(sc.wbuf, FrameData, r.id, n)
			if werr := sc.writeRaw(sc.wbuf[:headerSize+n]); werr != nil {
				r.cancel()
				r.ring.CloseRead(ErrClosed)
				return werr
			}
		}
		if err != nil {
			return nil
		}
	}
}

// endPayload encodes the request's outcome and trailer.
func (sc *serverConn) endPayload(r *request, herr error) []byte {
	status := herr
	switch {
	case r.canceled.Load():
		status = ErrCanceled
	case CodeOf(herr) == CodeUnknownOp && !strings.Contains(herr.Error(), r.op):
		status = fmt.Errorf("%w: %q", herr, r.op)
	}
	trailer := r.trailer.get()
	if status != nil {
		trailer = nil
	}
	if len(trailer) > MaxPayload-4-maxMessage {
		status = fmt.Errorf("internal error: response trailer of %d bytes is too large", len(trailer))
		trailer = nil
	}
	return encodeStatus(status, trailer)
}

func (sc *serverConn) writeRaw(b []byte) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	sc.c.SetWriteDeadline(time.Now().Add(sc.s.opts.IdleTimeout))
	if _, err := sc.c.Write(b); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}

func (sc *serverConn) writeFrame(f Frame) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	sc.c.SetWriteDeadline(time.Now().Add(sc.s.opts.IdleTimeout))
	return WriteFrame(sc.c, f)
}

// broken records the first write error and closes the connection, which ends the reader loop.
func (sc *serverConn) broken(err error) {
	sc.mu.Lock()
	if sc.fail == nil {
		sc.fail = err
	}
	sc.mu.Unlock()
	sc.c.Close()
}
