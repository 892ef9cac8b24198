package source

import (
	"context"
	"fmt"
	"io"

	"github.com/vm2image/vm2image/pkg/agent"
	"github.com/vm2image/vm2image/pkg/proto"
)

// Delta returns the delta of the file at path in the root against signature, computed in-process.
func (l *local) Delta(ctx context.Context, path string, signature []byte) (io.ReadCloser, error) {
	args := agent.DeltaArgs{Path: agent.Path(path), Signature: signature}
	return l.stream(ctx, func(ctx context.Context, w io.Writer) (agent.TreeResult, error) {
		_, err := l.a.Delta(ctx, args, w)
		return agent.TreeResult{}, err
	}), nil
}

// Delta asks the agent for the delta of the file at path against signature, which must be at
// most agent.MaxDeltaSignature bytes. The delta crosses the wire compressed as r's options say.
func (r *remote) Delta(ctx context.Context, path string, signature []byte) (io.ReadCloser, error) {
	if len(signature) > agent.MaxDeltaSignature {
		return nil, fmt.Errorf("agent %s: delta of %q: signature of %d bytes, more than a request carries (%d)",
			r.addr, path, len(signature), agent.MaxDeltaSignature)
	}
	args := agent.DeltaArgs{Path: agent.Path(path), Signature: signature, Compression: r.opts.Compression}
	c, err := r.get(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := c.Call(ctx, agent.OpDelta, args)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("agent %s: delta: %w", r.addr, err)
	}
	s := &deltaStream{r: r, c: c, rc: rc}
	if s.dec, err = agent.NewDecompressor(rc, args.Compression); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// deltaStream is a delta from an agent. Close returns the connection to r's pool.
type deltaStream struct {
	r   *remote
	c   *proto.Client
	rc  io.ReadCloser
	dec io.ReadCloser
	err error
}

func (s *deltaStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.dec.Read(p)
	if err == io.EOF {
		// The decompressor is done: the stream must end here too, with its status.
		if _, err2 := io.Copy(io.Discard, s.rc); err2 != nil {
			err = err2
		}
	}
	if err != nil && err != io.EOF {
		s.err = fmt.Errorf("agent %s: delta: %w", s.r.addr, err)
		return n, s.err
	}
	return n, err
}

func (s *deltaStream) Close() error {
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
