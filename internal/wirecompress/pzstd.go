package wirecompress

import (
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// pzstd compresses a stream as a sequence of independent zstd frames, one per chunk, encoded by
// several goroutines at once and written in order. A concatenation of frames is a valid zstd
// stream, so any zstd reader decodes it; a streaming encoder keeps one core busy, this keeps all
// of them. Memory is bounded: at most workers+1 chunks (and their outputs) are in flight.
type pzstd struct {
	w         io.Writer
	enc       *zstd.Encoder
	cur       *pzChunk
	queue     chan *pzChunk // in submission order, consumed by the writer goroutine
	free      chan *pzChunk // recycled chunks; also bounds how many are in flight
	done      chan struct{}
	submitted int
	closed    bool

	mu  sync.Mutex
	err error
}

type pzChunk struct {
	in, out []byte
	ready   chan struct{}
}

func newPzstd(w io.Writer, level zstd.EncoderLevel, workers, chunk int) (*pzstd, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(workers),
		zstd.WithWindowSize(chunk))
	if err != nil {
		return nil, err
	}
	n := workers + 1
	z := &pzstd{w: w, enc: enc, queue: make(chan *pzChunk, n), free: make(chan *pzChunk, n), done: make(chan struct{})}
	for range n {
		z.free <- &pzChunk{in: make([]byte, 0, chunk)}
	}
	z.cur = <-z.free
	go z.writeLoop()
	return z, nil
}

func (z *pzstd) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := z.failed(); err != nil {
			return n, err
		}
		in := z.cur.in
		k := copy(in[len(in):cap(in)], p)
		z.cur.in = in[:len(in)+k]
		p, n = p[k:], n+k
		if len(z.cur.in) == cap(z.cur.in) {
			z.submit()
		}
	}
	return n, nil
}

// submit hands the current chunk to an encoder goroutine, queues it for the writer, and waits
// for a free chunk (backpressure).
func (z *pzstd) submit() {
	c := z.cur
	c.ready = make(chan struct{})
	z.queue <- c
	z.submitted++
	go func() {
		c.out = z.enc.EncodeAll(c.in, c.out[:0])
		close(c.ready)
	}()
	z.cur = <-z.free
	z.cur.in = z.cur.in[:0]
}

func (z *pzstd) writeLoop() {
	defer close(z.done)
	for c := range z.queue {
		<-c.ready
		if z.failed() == nil {
			if _, err := z.w.Write(c.out); err != nil {
				z.setErr(err)
			}
		}
		z.free <- c
	}
}

func (z *pzstd) failed() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

func (z *pzstd) setErr(err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.err == nil {
		z.err = err
	}
}

// Close compresses what is left, waits for every chunk to be written and returns the first error.
// An empty stream still gets one (empty) frame.
func (z *pzstd) Close() error {
	if !z.closed {
		z.closed = true
		if len(z.cur.in) > 0 || z.submitted == 0 {
			z.submit()
		}
		close(z.queue)
		<-z.done
		z.enc.Close()
	}
	return z.failed()
}
