package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/vm2image/vm2image/internal/wirecompress"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/wire"
)

// remote talks to a vm2image-agent over the network. It keeps idle connections for reuse; each
// call holds one connection, so calls may run in parallel.
type remote struct {
	name, addr string
	opts       Options

	mu   sync.Mutex
	idle []*proto.Client
}

var _ Source = (*remote)(nil)

// Dial connects to the agent at addr and authenticates.
func Dial(ctx context.Context, addr, name string, opts Options) (Source, error) {
	if len(opts.Token) == 0 {
		return nil, fmt.Errorf("connecting to %s: no token (use --token-file)", addr)
	}
	r := &remote{name: name, addr: addr, opts: opts}
	c, err := r.get(ctx)
	if err != nil {
		return nil, err
	}
	r.put(c)
	return r, nil
}

func (r *remote) String() string { return r.name }

func (r *remote) get(ctx context.Context) (*proto.Client, error) {
	r.mu.Lock()
	for len(r.idle) > 0 {
		c := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		if c.Alive() {
			r.mu.Unlock()
			return c, nil
		}
		c.Close()
	}
	r.mu.Unlock()
	c, err := proto.Dial(ctx, r.addr, r.opts.Token, proto.ClientOptions{Fingerprint: r.opts.Fingerprint, Plaintext: r.opts.Plaintext})
	if err != nil {
		return nil, fmt.Errorf("connecting to agent %s: %w", r.addr, err)
	}
	return c, nil
}

func (r *remote) put(c *proto.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle = append(r.idle, c)
}

// Bounds on the JSON answers of an agent, by operation: a hostile agent gets an error naming the
// bound, never the converter's memory.
const (
	maxInfoAnswer     = 1 << 20
	maxPackagesAnswer = 64 << 20 // thousands of packages with their dependencies and files
	maxDepsAnswer     = 64 << 20
	maxProcessAnswer  = 16 << 20 // every process with its argv and environment
	maxHashAnswer     = 64 << 10 // plus perHashAnswer and six times its length (JSON escapes) per path
	perHashAnswer     = 1 << 10
	maxTrailer        = 256 << 10
)

// call runs one request whose whole answer is JSON of at most limit bytes.
func (r *remote) call(ctx context.Context, op string, args, out any, limit int64) error {
	c, err := r.get(ctx)
	if err != nil {
		return err
	}
	err = c.CallJSONLimit(ctx, op, args, out, limit)
	if reusable(err) {
		r.put(c)
	} else {
		c.Close()
	}
	if err != nil {
		return fmt.Errorf("agent %s: %s: %w", r.addr, op, err)
	}
	return nil
}

// reusable reports whether a connection is still in a known state after err.
func reusable(err error) bool {
	var pe *proto.Error
	return err == nil || errors.As(err, &pe)
}

func (r *remote) Info(ctx context.Context) (*wire.Info, error) {
	var v wire.Info
	return &v, r.call(ctx, wire.OpInfo, nil, &v, maxInfoAnswer)
}

func (r *remote) Packages(ctx context.Context) (*pkgmgr.DB, error) {
	var v pkgmgr.DB
	return &v, r.call(ctx, wire.OpPackages, nil, &v, maxPackagesAnswer)
}

func (r *remote) Deps(ctx context.Context, args wire.DepsArgs) ([]wire.DepsAnswer, error) {
	var v []wire.DepsAnswer
	return v, r.call(ctx, wire.OpDeps, args, &v, maxDepsAnswer)
}

func (r *remote) Processes(ctx context.Context, args wire.ProcessArgs) ([]procs.Process, error) {
	var v []procs.Process
	return v, r.call(ctx, wire.OpProcesses, args, &v, maxProcessAnswer)
}

func (r *remote) Hash(ctx context.Context, paths []string) ([]fswalk.HashResult, error) {
	var v []fswalk.HashResult
	if err := r.call(ctx, wire.OpHash, wire.HashArgs{Paths: paths}, &v, hashAnswerLimit(paths)); err != nil {
		return nil, err
	}
	if len(v) != len(paths) {
		return nil, fmt.Errorf("agent %s: hash: %d answers for %d paths", r.addr, len(v), len(paths))
	}
	for i := range v { // answers come in request order; JSON cannot carry every path's bytes back
		v[i].Path = paths[i]
	}
	return v, nil
}

// hashAnswerLimit bounds the answer to a hash request: each path comes back, JSON-escaped, with
// a digest, a size and maybe an error message.
func hashAnswerLimit(paths []string) int64 {
	n := int64(maxHashAnswer)
	for _, p := range paths {
		n += perHashAnswer + 6*int64(len(p))
	}
	return n
}

func (r *remote) Tree(ctx context.Context, args wire.TreeArgs, fn func(*fsmeta.Entry) error) (wire.TreeResult, error) {
	var res wire.TreeResult
	c, err := r.get(ctx)
	if err != nil {
		return res, err
	}
	rc, err := c.Call(ctx, wire.OpTree, args)
	if err != nil {
		c.Close()
		return res, fmt.Errorf("agent %s: tree: %w", r.addr, err)
	}
	er := fsmeta.NewReader(rc)
	for n := 0; err == nil; n++ {
		if n == MaxTreeEntries {
			err = fmt.Errorf("%w: more than %d entries in one tree", proto.ErrTooLarge, MaxTreeEntries)
			break
		}
		var e fsmeta.Entry
		if e, err = er.Read(); err == nil {
			err = fn(&e)
		}
	}
	if err == io.EOF {
		err = decodeTrailer(rc, &res)
	}
	rc.Close()
	if reusable(err) {
		r.put(c)
	} else {
		c.Close()
	}
	if err != nil {
		return res, fmt.Errorf("agent %s: tree: %w", r.addr, err)
	}
	return res, nil
}

// MaxTreeEntries bounds the entries of one tree stream: far more than any real VM holds (the
// largest measured here had 21.8k; a busy file server a few million), and few enough that a
// hostile agent streaming endless distinct entries cannot grow the converter without bound.
var MaxTreeEntries = 10_000_000

func decodeTrailer(rc io.Reader, v any) error {
	t, ok := rc.(interface{ Trailer() []byte })
	if !ok || len(t.Trailer()) == 0 {
		return nil
	}
	if len(t.Trailer()) > maxTrailer {
		return fmt.Errorf("decoding trailer: %w: %d bytes, over %d", proto.ErrTooLarge, len(t.Trailer()), maxTrailer)
	}
	if err := json.Unmarshal(t.Trailer(), v); err != nil {
		return fmt.Errorf("decoding trailer: %w", err)
	}
	return nil
}

func (r *remote) Filesystem(ctx context.Context, args wire.TreeArgs) (TarStream, error) {
	return r.tarCall(ctx, wire.OpFilesystem, args)
}

func (r *remote) Files(ctx context.Context, args wire.TreeArgs) (TarStream, error) {
	return r.tarCall(ctx, wire.OpFiles, args)
}

func (r *remote) tarCall(ctx context.Context, op string, args wire.TreeArgs) (TarStream, error) {
	if args.Compression == "" {
		args.Compression = r.opts.Compression
	}
	s, err := r.streamCall(ctx, op, args, args.Compression)
	if err != nil {
		return nil, err
	}
	s.trailer = &s.res
	return s, nil
}

// streamCall starts a request whose answer is a compressed stream, holding one connection
// until the stream is closed.
func (r *remote) streamCall(ctx context.Context, op string, args any, compression string) (*remoteStream, error) {
	c, err := r.get(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := c.Call(ctx, op, args)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("agent %s: %s: %w", r.addr, op, err)
	}
	s := &remoteStream{r: r, c: c, rc: rc, op: op}
	s.counter.r = rc
	dec, err := wirecompress.NewDecompressor(&s.counter, compression)
	if err != nil { // dec may be a typed nil: never keep it
		s.err = err
		s.Close()
		return nil, fmt.Errorf("agent %s: %s: %w", r.addr, op, err)
	}
	s.dec = dec
	return s, nil
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type remoteStream struct {
	r       *remote
	c       *proto.Client
	rc      io.ReadCloser
	op      string
	counter countingReader
	dec     io.ReadCloser
	res     wire.TreeResult
	trailer any // where the End frame's trailer is decoded (nil: ignored)
	err     error
}

func (s *remoteStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.dec.Read(p)
	if err == io.EOF {
		// The decompressor is done: the stream must end here too, with its status.
		if _, err2 := io.Copy(io.Discard, &s.counter); err2 != nil {
			err = err2
		} else if err2 = s.decodeTrailer(); err2 != nil {
			err = err2
		}
	}
	if err != nil && err != io.EOF {
		s.err = fmt.Errorf("agent %s: %s: %w", s.r.addr, s.op, err)
		return n, s.err
	}
	return n, err
}

func (s *remoteStream) Close() error {
	if s.dec != nil {
		s.dec.Close()
	}
	s.rc.Close() // before EOF this cancels the request and leaves the connection usable
	if reusable(s.err) {
		s.r.put(s.c)
	} else {
		s.c.Close()
	}
	return nil
}

func (s *remoteStream) decodeTrailer() error {
	if s.trailer == nil {
		return nil
	}
	return decodeTrailer(s.rc, s.trailer)
}

func (s *remoteStream) Result() wire.TreeResult { return s.res }

func (s *remoteStream) WireBytes() int64 { return s.counter.n.Load() }

func (r *remote) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.idle {
		c.Close()
	}
	r.idle = nil
	return nil
}
