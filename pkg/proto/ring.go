package proto

import (
	"io"
	"sync"
)

// DefaultRingSize is the capacity of the ring buffer behind each response.
const DefaultRingSize = 4 << 20

// Ring is a fixed-capacity byte ring between one writer goroutine and one reader goroutine.
// Write blocks while the ring is full and Read while it is empty, so a fast producer is held back
// by a slow consumer (backpressure) with memory bounded by the capacity.
type Ring struct {
	mu       sync.Mutex
	readable sync.Cond // signaled when data arrives or either side closes
	writable sync.Cond // signaled when space frees up or either side closes
	buf      []byte
	start, n int // data is buf[start:start+n], wrapping around
	peak     int // the largest n seen, for tests
	waiting  int // readers blocked in Read, for tests that must close under a blocked reader

	wclosed bool  // the writer is done
	werr    error // what Read returns once drained (io.EOF for a clean end)
	rclosed bool  // the reader is gone
	rerr    error // what Write returns
}

var _ io.ReadWriter = (*Ring)(nil)

// NewRing returns an empty ring of size bytes (DefaultRingSize if size <= 0).
func NewRing(size int) *Ring {
	if size <= 0 {
		size = DefaultRingSize
	}
	return newRingBuf(make([]byte, size))
}

func newRingBuf(buf []byte) *Ring {
	r := &Ring{buf: buf}
	r.readable.L = &r.mu
	r.writable.L = &r.mu
	return r
}

// Write copies all of p into the ring, blocking while it is full. It fails with the CloseRead
// error once the reader is gone, and with ErrClosed after CloseWithError.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	written := 0
	for {
		if r.rclosed {
			return written, r.rerr
		}
		if r.wclosed {
			return written, ErrClosed
		}
		if len(p) == 0 {
			return written, nil
		}
		if r.n == len(r.buf) {
			r.writable.Wait()
			continue
		}
		k := r.put(p)
		p = p[k:]
		written += k
		r.readable.Broadcast()
	}
}

// put copies as much of p as fits; the caller holds mu.
func (r *Ring) put(p []byte) int {
	end := (r.start + r.n) % len(r.buf)
	var k int
	if end >= r.start {
		k = copy(r.buf[end:], p)
		k += copy(r.buf[:r.start], p[k:])
	} else {
		k = copy(r.buf[end:r.start], p)
	}
	r.n += k
	if r.n > r.peak {
		r.peak = r.n
	}
	return k
}

// Read copies up to len(p) bytes out of the ring, blocking while it is empty. Once the writer has
// closed and the ring is drained it returns the writer's error (io.EOF for a nil one); after
// CloseRead it returns ErrClosed.
func (r *Ring) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.n == 0 && !r.wclosed && !r.rclosed {
		r.waiting++
		r.readable.Wait()
		r.waiting--
	}
	switch {
	case r.rclosed:
		return 0, ErrClosed
	case r.n == 0:
		return 0, r.werr
	}
	k := copy(p, r.buf[r.start:min(r.start+r.n, len(r.buf))])
	if k < len(p) && k < r.n {
		k += copy(p[k:], r.buf[:r.n-k])
	}
	r.start = (r.start + k) % len(r.buf)
	r.n -= k
	if r.n == 0 {
		r.start = 0
	}
	r.writable.Broadcast()
	return k, nil
}

// CloseWithError ends the writer's side: Read returns err (io.EOF if nil) once the ring is
// drained, and later Writes fail. Only the first close counts.
func (r *Ring) CloseWithError(err error) error {
	if err == nil {
		err = io.EOF
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.wclosed {
		r.wclosed, r.werr = true, err
	}
	r.readable.Broadcast()
	r.writable.Broadcast()
	return nil
}

// CloseRead ends the reader's side: buffered data is dropped and a blocked or later Write fails
// with err (ErrClosed if nil). Only the first close counts.
func (r *Ring) CloseRead(err error) error {
	if err == nil {
		err = ErrClosed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.rclosed {
		r.rclosed, r.rerr = true, err
		r.start, r.n = 0, 0
	}
	r.readable.Broadcast()
	r.writable.Broadcast()
	return nil
}

// retire closes the reader's side and lets go of the buffer, so that a writer that outlives its
// request can never touch a buffer that has been handed to the next one.
func (r *Ring) retire() {
	r.CloseRead(ErrClosed)
	r.mu.Lock()
	r.buf = nil
	r.mu.Unlock()
}

// Len returns the number of buffered bytes.
func (r *Ring) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
