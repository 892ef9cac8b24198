package proto

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Client is one authenticated connection to an agent. It runs one call at a time (a second Call
// waits for the first to end); open several Clients for parallel calls.
type Client struct {
	conn net.Conn
	br   *bufio.Reader

	wmu  sync.Mutex    // serializes frame writes
	slot chan struct{} // holds a token from Call until the call's End frame arrives

	mu     sync.Mutex
	cur    *stream // the call whose frames are arriving
	lastID uint32

	closeOnce  sync.Once
	closed     chan struct{} // closed by shutdown: unblocks every waiter
	cause      error         // why the connection ended; nil when Close ended it
	readerDone chan struct{}
}

// ClientOptions configures the transport of a Client.
type ClientOptions struct {
	// Fingerprint pins the agent's certificate (see ParseFingerprint); empty: any certificate,
	// with the channel-bound proofs alone defeating a relay.
	Fingerprint string
	// Plaintext speaks the protocol over plain TCP, without TLS; the agent must run with
	// --insecure-plaintext too.
	Plaintext bool
}

// Dial connects to the agent at addr (host:port) and runs the handshake: TLS 1.3 (unless
// opts.Plaintext), then the token proofs bound to the TLS session.
func Dial(ctx context.Context, addr string, token []byte, opts ClientOptions) (*Client, error) {
	if len(token) == 0 {
		return nil, fmt.Errorf("%w: no token given", ErrAuth)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing agent: %w", err)
	}
	return NewClient(ctx, conn, token, opts)
}

// NewClient runs the handshake over conn, bounded by ctx and DefaultHandshakeTimeout. On failure
// it closes conn.
func NewClient(ctx context.Context, conn net.Conn, token []byte, opts ClientOptions) (*Client, error) {
	if len(token) == 0 {
		conn.Close()
		return nil, fmt.Errorf("%w: no token given", ErrAuth)
	}
	pin := ""
	if opts.Fingerprint != "" {
		var err error
		if pin, err = ParseFingerprint(opts.Fingerprint); err != nil {
			conn.Close()
			return nil, err
		}
	}
	deadline := time.Now().Add(DefaultHandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	raw := conn
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	conn, err := clientAuth(raw, token, pin, opts.Plaintext)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("handshaking with agent: %w (%v)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("handshaking with agent: %w", err)
	}
	conn.SetDeadline(time.Time{})
	c := &Client{
		conn:       conn,
		br:         bufio.NewReaderSize(conn, 64<<10),
		slot:       make(chan struct{}, 1),
		closed:     make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

// clientAuth runs TLS (unless plaintext) and the proofs over conn; it returns the connection to
// use from then on.
func clientAuth(conn net.Conn, token []byte, pin string, plaintext bool) (net.Conn, error) {
	if !plaintext {
		tc := tls.Client(newBufferedConn(conn), clientTLSConfig(pin))
		if err := tc.Handshake(); err != nil {
			return conn, clientTLSError(err)
		}
		conn = tc
	}
	bind, err := binding(conn)
	if err != nil {
		return conn, err
	}
	// Unbuffered: nothing past the verdict is read before the reader loop starts.
	return conn, clientHandshake(conn, token, bind)
}

// Call sends a request and returns its response stream. Read it to EOF: a non-OK status from the
// server comes out of Read as an *Error (errors.Is(err, ErrNotFound) works) in place of io.EOF,
// and a connection lost mid-stream as an error wrapping io.ErrUnexpectedEOF, never a clean EOF.
// Closing the stream before EOF, or canceling ctx, cancels the request; the Client stays usable.
// The stream also has a Trailer() []byte method: what the handler set with SetTrailer, after EOF.
func (c *Client) Call(ctx context.Context, op string, args any) (io.ReadCloser, error) {
	payload, err := encodeRequest(op, args)
	if err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil {
		return nil, fmt.Errorf("calling %s: %w", op, err)
	}
	c.mu.Lock()
	c.lastID++
	s := &stream{c: c, id: c.lastID, ctx: ctx, frames: make(chan inFrame, 4), gone: make(chan struct{})}
	c.cur = s
	c.mu.Unlock()
	if err := c.writeFrame(Frame{Type: FrameRequest, ID: s.id, Payload: payload}); err != nil {
		c.shutdown(fmt.Errorf("sending request: %w", err))
		return nil, fmt.Errorf("calling %s: %w", op, c.closedErr())
	}
	s.stop = context.AfterFunc(ctx, s.detach)
	return s, nil
}

func encodeRequest(op string, args any) ([]byte, error) {
	req := Request{Op: op}
	switch a := args.(type) {
	case nil:
	case json.RawMessage:
		req.Args = a
	default:
		b, err := json.Marshal(args)
		if err != nil {
			return nil, fmt.Errorf("encoding %s arguments: %w", op, err)
		}
		req.Args = b
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding %s request: %w", op, err)
	}
	if len(b) > MaxPayload {
		return nil, fmt.Errorf("encoding %s request: %d bytes: %w", op, len(b), ErrFrameTooLarge)
	}
	return b, nil
}

// MaxJSONAnswer bounds the JSON answer CallJSON decodes: a hostile agent cannot make the client
// buffer without bound.
const MaxJSONAnswer = 64 << 20

// CallJSON runs Call and decodes the whole response as JSON into out (nil: discard it); an answer
// over MaxJSONAnswer bytes fails with ErrTooLarge.
func (c *Client) CallJSON(ctx context.Context, op string, args any, out any) error {
	return c.CallJSONLimit(ctx, op, args, out, MaxJSONAnswer)
}

// CallJSONLimit is CallJSON with an answer bound of limit bytes.
func (c *Client) CallJSONLimit(ctx context.Context, op string, args any, out any, limit int64) error {
	rc, err := c.Call(ctx, op, args)
	if err != nil {
		return err
	}
	defer rc.Close()
	lr := &limitedReader{r: rc, n: limit}
	var decErr error
	if out != nil {
		decErr = json.NewDecoder(lr).Decode(out)
	}
	// The status comes at EOF and wins over a decoding error it may have caused; the drain is
	// bounded too, so an endless answer ends here.
	_, err = io.Copy(io.Discard, lr)
	switch {
	case lr.over:
		return fmt.Errorf("decoding %s response: %w: over %d bytes", op, ErrTooLarge, limit)
	case err != nil:
		return fmt.Errorf("calling %s: %w", op, err)
	case decErr != nil:
		return fmt.Errorf("decoding %s response: %w", op, decErr)
	}
	return nil
}

// limitedReader reads at most n bytes from r and notes an attempt to read past them.
type limitedReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// One byte more tells a stream that ends exactly at the limit from one that goes on.
		var b [1]byte
		n, err := l.r.Read(b[:])
		if n > 0 {
			l.over = true
			return 0, fmt.Errorf("%w: answer exceeds the limit", ErrTooLarge)
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// acquire waits for the call slot.
func (c *Client) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.closed:
		return c.closedErr()
	default:
	}
	select {
	case c.slot <- struct{}{}:
		return nil
	case <-c.closed:
		return c.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closedErr says why a closed Client cannot call.
func (c *Client) closedErr() error {
	if c.cause == nil {
		return ErrClosed
	}
	return fmt.Errorf("%w: %v", ErrClosed, c.cause)
}

func (c *Client) writeFrame(f Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return WriteFrame(c.conn, f)
}

// sendCancel asks the server to stop call id.
func (c *Client) sendCancel(id uint32) {
	if err := c.writeFrame(Frame{Type: FrameCancel, ID: id}); err != nil {
		c.shutdown(fmt.Errorf("sending cancel: %w", err))
	}
}

// Alive reports whether the connection is still usable: false once it was closed or lost.
func (c *Client) Alive() bool {
	select {
	case <-c.closed:
		return false
	default:
		return true
	}
}

// Close closes the connection, once; it unblocks every Call and Read waiting on this Client.
func (c *Client) Close() error {
	c.shutdown(nil)
	<-c.readerDone
	return nil
}

func (c *Client) shutdown(cause error) {
	c.closeOnce.Do(func() {
		c.cause = cause
		close(c.closed)
		c.conn.Close()
	})
}

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, maxDataFrame)
	return &b
}}

func putBuf(pb *[]byte) {
	if pb != nil {
		bufPool.Put(pb)
	}
}

// ReadIdleTimeout ends a connection on which the agent sent nothing for that long: a hostile or
// stuck agent cannot hold a conversion forever. It is longer than the agent's own idle timeout
// (10 minutes by default), after which an agent closes an idle connection itself.
var ReadIdleTimeout = 15 * time.Minute

// readLoop reads the server's frames and hands them to the current call, until the connection
// ends.
func (c *Client) readLoop() {
	defer close(c.readerDone)
	for {
		pb := bufPool.Get().(*[]byte)
		idle := ReadIdleTimeout
		_ = c.conn.SetReadDeadline(time.Now().Add(idle))
		f, err := ReadFrame(c.br, *pb)
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: the agent sent nothing for %s", os.ErrDeadlineExceeded, idle)
		}
		if err == nil && len(f.Payload) > 0 && &f.Payload[0] != &(*pb)[0] {
			putBuf(pb) // the payload did not fit: it has its own memory
			pb = nil
		}
		if err != nil {
			putBuf(pb)
			c.shutdown(err)
			return
		}
		if err := c.dispatch(f, pb); err != nil {
			c.shutdown(err)
			return
		}
	}
}

// dispatch hands one frame to the current call, and pb (the frame's pooled memory, if any) with
// it. An End frame ends the call and frees the slot.
func (c *Client) dispatch(f Frame, pb *[]byte) error {
	in, s, err := c.route(f, pb)
	if err != nil {
		putBuf(pb)
		return err
	}
	select {
	case s.frames <- in:
	case <-s.gone:
		putBuf(in.pb)
	case <-c.closed:
		putBuf(in.pb)
		return ErrClosed
	}
	if in.end {
		<-c.slot
	}
	return nil
}

// route finds the call f belongs to and turns f into what the call's stream receives.
func (c *Client) route(f Frame, pb *[]byte) (inFrame, *stream, error) {
	if f.Type != FrameData && f.Type != FrameEnd {
		return inFrame{}, nil, fmt.Errorf("unexpected %v frame from the agent", f.Type)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.cur
	if s == nil || s.id != f.ID {
		return inFrame{}, nil, fmt.Errorf("unexpected %v frame for call %d", f.Type, f.ID)
	}
	if f.Type == FrameData {
		return inFrame{data: f.Payload, pb: pb}, s, nil
	}
	status, trailer, err := decodeStatus(f.Payload)
	if err != nil {
		return inFrame{}, nil, err
	}
	in := inFrame{end: true, status: status, trailer: append([]byte(nil), trailer...)}
	putBuf(pb)
	c.cur = nil
	s.ended.Store(true)
	return in, s, nil
}
