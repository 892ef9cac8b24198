package proto

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Server defaults.
const (
	// DefaultPort is the agent's port: it listens there unless told otherwise, and a source
	// given as HOST alone means HOST:DefaultPort.
	DefaultPort        = 49153
	DefaultMaxConns    = 16
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultPreAuthTimeout bounds a connection's TLS handshake and token proofs together.
	DefaultPreAuthTimeout = 3 * time.Second
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
	Identity         *Identity     // TLS key and certificate (nil: NewServer generates one; see Fingerprint)
	Plaintext        bool          // serve plain TCP, without TLS (the client must ask for it too)
	MaxConns         int           // concurrent authenticated connections (DefaultMaxConns); extra ones are refused cleanly
	IdleTimeout      time.Duration // a connection with no request for this long is closed, and so is one whose client reads nothing of a response for this long (DefaultIdleTimeout)
	HandshakeTimeout time.Duration // TLS handshake and proofs together (DefaultPreAuthTimeout)
	PreAuthMax       int           // connections handshaking at once (DefaultPreAuthMax); a new one evicts the oldest of the busiest address
	PreAuthPerAddr   int           // connections handshaking at once from one IP address (DefaultPreAuthPerAddr); a new one evicts that address's oldest
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
		o.HandshakeTimeout = DefaultPreAuthTimeout
	}
	if o.PreAuthMax <= 0 {
		o.PreAuthMax = DefaultPreAuthMax
	}
	if o.PreAuthPerAddr <= 0 {
		o.PreAuthPerAddr = DefaultPreAuthPerAddr
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
	preauth *preauth
	tlsConf *tls.Config // nil in plaintext
	initErr error       // generating the identity failed
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
	s := &Server{
		h:       h,
		opts:    opts,
		limiter: newLimiter(opts.MaxRate),
		slots:   make(chan struct{}, opts.MaxConns),
		preauth: newPreauth(opts.PreAuthMax, opts.PreAuthPerAddr),
	}
	if !opts.Plaintext {
		if s.opts.Identity == nil {
			s.opts.Identity, s.initErr = NewIdentity()
		}
		if s.opts.Identity != nil {
			s.tlsConf = serverTLSConfig(s.opts.Identity)
		}
	}
	return s
}

// Fingerprint returns the fingerprint of the server's certificate; empty in plaintext.
func (s *Server) Fingerprint() string {
	if s.opts.Plaintext || s.opts.Identity == nil {
		return ""
	}
	return s.opts.Identity.Fingerprint
}

// check says why the server cannot serve.
func (s *Server) check() error {
	if len(s.opts.Token) == 0 {
		return errNoToken
	}
	return s.initErr
}

// Serve accepts connections on ln and serves each in its own goroutine. It returns nil when ctx
// is done or ln is closed, after every connection has ended; a misbehaving client only ever ends
// its own connection.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
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
	defer c.Close()
	if err := s.check(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	peer := c.RemoteAddr().String()
	conn, release, err := s.admit(c)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		s.opts.Logf("proto: %s: refusing connection: %v", peer, err)
		return err
	}
	defer release()
	s.opts.Logf("proto: %s: accepted connection", peer)
	sc := &serverConn{s: s, c: conn, peer: peer}
	return sc.serve(ctx)
}

// admit runs the handshake (TLS, then the proofs) under HandshakeTimeout, as one of the
// pre-authentication connections, and takes a connection slot.
func (s *Server) admit(c net.Conn) (conn net.Conn, release func(), err error) {
	pc, pconn, _ := s.preauth.add(c)
	c.SetDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	conn, hs, err := s.handshake(pconn)
	if !s.preauth.done(pc) && err != nil {
		err = fmt.Errorf("%w (evicted: too many connections handshaking)", err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("handshaking: %w", err)
	}
	select {
	case s.slots <- struct{}{}:
	default:
		err := fmt.Errorf("%w: agent busy: all %d connections in use", ErrUnavailable, s.opts.MaxConns)
		refuse(conn, err)
		return nil, nil, err
	}
	release = func() { <-s.slots }
	if err := hs.accept(conn); err != nil {
		release()
		return nil, nil, fmt.Errorf("handshaking: %w", err)
	}
	c.SetDeadline(time.Time{})
	return conn, release, nil
}

// handshake runs TLS (unless plaintext) and the server's side of the proofs. A client that
// speaks the other transport gets a plaintext refusal it can read.
func (s *Server) handshake(c net.Conn) (net.Conn, *handshake, error) {
	conn := c
	if s.tlsConf != nil {
		bc := newBatchConn(newBufferedConn(c))
		tc := tls.Server(bc, s.tlsConf)
		if err := tc.Handshake(); err != nil {
			if serverTLSMismatch(err) {
				err = fmt.Errorf("%w: the client speaks plaintext (--insecure-plaintext), this agent requires TLS", ErrTransport)
				refusePlain(c, err)
				return nil, nil, err
			}
			return nil, nil, serverTLSError(err)
		}
		bc.startBatching()
		conn = &flushConn{Conn: tc, b: bc}
	}
	bind, err := binding(conn)
	if err != nil {
		return nil, nil, err
	}
	hs, err := serverHandshake(conn, s.opts.Token, bind)
	if err != nil && s.tlsConf == nil && errors.Is(err, ErrTransport) {
		err = fmt.Errorf("%w: the client speaks TLS, this agent runs with --insecure-plaintext", ErrTransport)
		refusePlain(c, err)
	}
	return conn, hs, err
}

// refusePlain answers a client of the other transport in plaintext: a hello and a refusal, which
// a plaintext client reports as such and a TLS client sees as a record that is not TLS. It then
// waits (bounded by the handshake deadline) for the client to hang up, so that the answer is not
// lost to a reset.
func refusePlain(c net.Conn, reason error) {
	var n nonce
	if writeHello(c, Version, n) == nil && refuse(c, reason) == nil {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
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
