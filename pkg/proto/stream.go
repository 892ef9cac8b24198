package proto

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// inFrame is what the reader loop hands to a stream: data (in pooled memory pb) or the end.
type inFrame struct {
	data    []byte
	pb      *[]byte
	end     bool
	status  error // nil or *Error
	trailer []byte
}

// stream is the response of one call, as returned by Client.Call.
type stream struct {
	c      *Client
	id     uint32
	ctx    context.Context
	frames chan inFrame
	stop   func() bool // stops the ctx watcher

	gone     chan struct{} // closed by Close (or ctx): the caller has stopped reading
	goneOnce sync.Once
	ended    atomic.Bool // the End frame has arrived

	// Used by Read only.
	cur     []byte
	pb      *[]byte
	err     error
	trailer []byte
}

var _ io.ReadCloser = (*stream)(nil)

func (s *stream) Read(p []byte) (int, error) {
	if s.err == nil {
		select {
		case <-s.gone:
			s.finish(s.goneErr())
		default:
		}
	}
	for len(s.cur) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		putBuf(s.pb)
		s.cur, s.pb = nil, nil
		in, err := s.next()
		switch {
		case err != nil:
			s.finish(err)
		case in.end && in.status != nil:
			s.finish(in.status)
		case in.end:
			s.trailer = in.trailer
			s.finish(io.EOF)
		default:
			s.cur, s.pb = in.data, in.pb
		}
	}
	if s.err != nil {
		return 0, s.err
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

func (s *stream) finish(err error) {
	s.err = err
	s.stop()
}

// next waits for the next frame. After Close (or ctx) it fails; once the connection is gone it
// still hands out what arrived before.
func (s *stream) next() (inFrame, error) {
	select {
	case <-s.gone:
		return inFrame{}, s.goneErr()
	default:
	}
	select {
	case in := <-s.frames:
		return in, nil
	case <-s.gone:
		return inFrame{}, s.goneErr()
	case <-s.c.closed:
		select {
		case in := <-s.frames:
			return in, nil
		default:
		}
		if s.c.cause == nil {
			return inFrame{}, fmt.Errorf("reading response: %w", ErrClosed)
		}
		return inFrame{}, fmt.Errorf("reading response: connection lost: %w (%v)", io.ErrUnexpectedEOF, s.c.cause)
	}
}

func (s *stream) goneErr() error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("reading response: %w", err)
	}
	return fmt.Errorf("reading response: %w", ErrClosed)
}

// Trailer returns what the handler attached with SetTrailer; it is set once Read returned io.EOF.
func (s *stream) Trailer() []byte { return s.trailer }

// Close stops reading. Before the End frame it cancels the call: the server stops the handler and
// the rest of the response is discarded as it arrives, so the Client can make its next call.
func (s *stream) Close() error {
	s.stop()
	s.detach()
	return nil
}

// detach stops reading, once; it is what ctx cancellation does.
func (s *stream) detach() {
	s.goneOnce.Do(func() {
		close(s.gone)
		if !s.ended.Load() {
			s.c.sendCancel(s.id)
		}
		for {
			select {
			case in := <-s.frames:
				putBuf(in.pb)
			default:
				return
			}
		}
	})
}
