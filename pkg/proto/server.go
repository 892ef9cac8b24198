package proto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Server defaults.
const (
	DefaultMaxConns    = 16
	DefaultIdleTimeout = 10 * time.Minute
)

// Request is one call: an operation name and its JSON arguments.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Handler serves requests. It writes the whole response to w and returns nil, or an error that
// the client receives as a coded *Error at the end of the stream (see CodeOf). Writes to w block
// while the connection is behind (backpressure) and fail once the request is canceled, as ctx is.
type Handler interface {
	Serve(ctx context.Context, req Request, w io.Writer) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req Request, w io.Writer) error

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, req Request, w io.Writer) error {
	return f(ctx, req, w)
}

// ServerOptions configures a Server; zero fields get defaults.
type ServerOptions struct {
	Token            []byte        // shared secret; required
	MaxConns         int           // concurrent connections (DefaultMaxConns); extra ones are refused cleanly
	IdleTimeout      time.Duration // a connection with no request for this long is closed, and so is one whose client reads nothing of a response for this long (DefaultIdleTimeout)
	HandshakeTimeout time.Duration // DefaultHandshakeTimeout
	RingSize         int           // response buffer per connection (DefaultRingSize)
	MaxRate          int64         // bytes per second of response data over all connections; 0 = unlimited
	Logf             func(format string, args ...any)
}

func (o *ServerOptions) applyDefaults() {
	o.Token = bytes.Clone(o.Token)
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.RingSize <= 0 {
		o.RingSize = DefaultRingSize
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Server serves a Handler to authenticated clients.
type Server struct {
	h       Handler
	opts    ServerOptions
	limiter *limiter
	slots   chan struct{} // one token per authenticated connection
	pending atomic.Int64  // connections being served, handshaking ones included
}

var errNoToken = fmt.Errorf("%w: the server has no token", ErrAuth)

// NewServer returns a server of h (nil: every operation is unknown).
func NewServer(h Handler, opts ServerOptions) *Server {
	opts.applyDefaults()
	if h == nil {
		h = HandlerFunc(func(_ context.Context, req Request, _ io.Writer) error {
			return fmt.Errorf("%w %q", ErrUnknownOp, req.Op)
		})
	}
	return &Server{
		h:       h,
		opts:    opts,
		limiter: newLimiter(opts.MaxRate),
		slots:   make(chan struct{}, opts.MaxConns),
	}
}

// Serve accepts connections on ln and serves each in its own goroutine. It returns nil when ctx
// is done or ln is closed, after every connection has ended; a misbehaving client only ever ends
// its own connection.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if len(s.opts.Token) == 0 {
		return errNoToken
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	maxPending := int64(4*s.opts.MaxConns + 16)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.opts.Logf("proto: accepting connection: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accepting connection: %w", err)
		}
		backoff = 0
		if s.pending.Load() >= maxPending {
			s.opts.Logf("proto: %s: dropping connection: %d connections pending", c.RemoteAddr(), maxPending)
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.ServeConn(ctx, c)
		}()
	}
}

// ServeConn runs the handshake on c and then serves its requests until the client leaves, the
// connection idles out, breaks the protocol, or ctx is done. It closes c and logs why it ended;
// the error it returns is that reason, nil for an ordinary end.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	s.pending.Add(1)
	defer s.pending.Add(-1)
	defer c.Close()
	if len(s.opts.Token) == 0 {
		return errNoToken
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	peer := c.RemoteAddr().String()
	release, err := s.admit(c)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		s.opts.Logf("proto: %s: refusing connection: %v", peer, err)
		return err
	}
	defer release()
	sc := &serverConn{s: s, c: c, peer: peer}
	return sc.serve(ctx)
}

// admit runs the handshake under HandshakeTimeout and takes a connection slot.
func (s *Server) admit(c net.Conn) (release func(), err error) {
	c.SetDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	hs, err := serverHandshake(c, s.opts.Token)
	if err != nil {
		return nil, fmt.Errorf("handshaking: %w", err)
	}
	select {
	case s.slots <- struct{}{}:
	default:
		err := fmt.Errorf("%w: agent busy: all %d connections in use", ErrUnavailable, s.opts.MaxConns)
		refuse(c, err)
		return nil, err
	}
	release = func() { <-s.slots }
	if err := hs.accept(c); err != nil {
		release()
		return nil, fmt.Errorf("handshaking: %w", err)
	}
	c.SetDeadline(time.Time{})
	return release, nil
}

type trailerKey struct{}

type trailerBox struct {
	mu sync.Mutex
	b  []byte
}

// SetTrailer attaches b to the end of the response a handler is serving under ctx; the client
// reads it from the response stream's Trailer method once it reached EOF. A later call replaces
// an earlier one. Outside a handler it does nothing.
func SetTrailer(ctx context.Context, b []byte) {
	if t, ok := ctx.Value(trailerKey{}).(*trailerBox); ok {
		t.mu.Lock()
		t.b = bytes.Clone(b)
		t.mu.Unlock()
	}
}

func (t *trailerBox) get() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b
}
