package layer

import (
	"crypto/sha256"
	"hash"
)

// asyncHash computes a sha256 on another goroutine: writes hand over copies of their bytes, so
// hashing the layer overlaps with reading and writing it. At most asyncHashDepth chunks wait.
type asyncHash struct {
	h     hash.Hash
	ch    chan []byte
	free  chan []byte
	done  chan struct{}
	ended bool
}

const asyncHashDepth = 4

func newAsyncHash() *asyncHash {
	a := &asyncHash{h: sha256.New(), ch: make(chan []byte, asyncHashDepth), free: make(chan []byte, asyncHashDepth+1), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for b := range a.ch {
			a.h.Write(b)
			select {
			case a.free <- b[:0]:
			default:
			}
		}
	}()
	return a
}

// Write queues a copy of p; it never fails.
func (a *asyncHash) Write(p []byte) (int, error) {
	var b []byte
	select {
	case b = <-a.free:
	default:
	}
	b = append(b[:0], p...)
	a.ch <- b
	return len(p), nil
}

// Sum waits for every queued byte to be hashed and returns the digest. Write must not be
// called after Sum.
func (a *asyncHash) Sum() []byte {
	if !a.ended {
		a.ended = true
		close(a.ch)
	}
	<-a.done
	return a.h.Sum(nil)
}

// Close stops the hashing goroutine (for a Write that ends early).
func (a *asyncHash) Close() { a.Sum() }
