package proto

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func (r *Ring) peakLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak
}

// transfer moves data through a ring of size bytes with writes and reads of random sizes,
// yielding at random, and returns what came out.
func transfer(t testing.TB, rng *rand.Rand, size int, data []byte) []byte {
	r := NewRing(size)
	wseed, rseed := rng.Uint64(), rng.Uint64()
	werr := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(wseed, 1))
		p := data
		for len(p) > 0 {
			k := min(len(p), rng.IntN(2*size)+1)
			if n, err := r.Write(p[:k]); err != nil || n != k {
				werr <- err
				return
			}
			p = p[k:]
			if rng.IntN(4) == 0 {
				runtime.Gosched()
			}
		}
		werr <- r.CloseWithError(nil)
	}()
	rrng := rand.New(rand.NewPCG(rseed, 2))
	var out []byte
	buf := make([]byte, 2*size+1)
	for {
		n, err := r.Read(buf[:rrng.IntN(len(buf))+1])
		out = append(out, buf[:n]...)
		if l := r.Len(); l > size {
			t.Fatalf("ring of %d holds %d bytes", size, l)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if rrng.IntN(4) == 0 {
			runtime.Gosched()
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if p := r.peakLen(); p > size {
		t.Fatalf("peak %d exceeds capacity %d", p, size)
	}
	return out
}

func TestRingProperty(t *testing.T) {
	checkLeaks(t)
	rng := rand.New(rand.NewPCG(42, 42))
	for i := range 300 {
		size := rng.IntN(300) + 1
		if i%10 == 0 {
			size = rng.IntN(1<<16) + 1
		}
		data := make([]byte, rng.IntN(20*size+1))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		if out := transfer(t, rng, size, data); !bytes.Equal(out, data) {
			t.Fatalf("ring of %d: %d bytes in, %d out, content differs", size, len(data), len(out))
		}
	}
}

func TestRingCloseWithError(t *testing.T) {
	errBoom := errors.New("boom")
	r := NewRing(8)
	r.Write([]byte("abc"))
	r.CloseWithError(errBoom)
	r.CloseWithError(errors.New("second close is ignored"))
	if _, err := r.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after CloseWithError: %v", err)
	}
	got, err := io.ReadAll(r)
	if string(got) != "abc" || !errors.Is(err, errBoom) {
		t.Fatalf("got %q, %v; want abc, boom", got, err)
	}
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, errBoom) {
		t.Errorf("error is not sticky: %v", err)
	}

	r = NewRing(8)
	r.CloseWithError(nil)
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("nil close: %v, want io.EOF", err)
	}
}

func TestRingCloseWithErrorWakesReader(t *testing.T) {
	r := NewRing(8)
	got := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 4))
		got <- err
	}()
	// Close only once the reader is blocked in Read, so the wake-up itself is what is tested.
	waitFor(t, 5*time.Second, "the reader to block", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.waiting == 1
	})
	r.CloseWithError(nil)
	if err := <-got; err != io.EOF {
		t.Fatalf("blocked Read: %v", err)
	}
}

func TestRingCloseReadUnblocksWriter(t *testing.T) {
	for _, closeErr := range []error{errors.New("reader gone"), nil} {
		r := NewRing(4)
		type result struct {
			n   int
			err error
		}
		got := make(chan result, 1)
		go func() {
			n, err := r.Write(make([]byte, 100))
			got <- result{n, err}
		}()
		waitFor(t, 2*time.Second, "the ring to fill", func() bool { return r.Len() == 4 })
		select {
		case res := <-got:
			t.Fatalf("Write returned on a full ring: %+v", res)
		case <-time.After(20 * time.Millisecond):
		}
		r.CloseRead(closeErr)
		res := <-got
		want := closeErr
		if want == nil {
			want = ErrClosed
		}
		if res.n != 4 || !errors.Is(res.err, want) {
			t.Errorf("Write: %d, %v; want 4, %v", res.n, res.err, want)
		}
		if _, err := r.Write([]byte("x")); !errors.Is(err, want) {
			t.Errorf("later Write: %v", err)
		}
		if _, err := r.Read(make([]byte, 4)); !errors.Is(err, ErrClosed) {
			t.Errorf("Read after CloseRead: %v", err)
		}
		if r.Len() != 0 {
			t.Errorf("Len after CloseRead: %d", r.Len())
		}
	}
}

func TestRingRetire(t *testing.T) {
	buf := make([]byte, 4)
	r := newRingBuf(buf)
	r.retire()
	if n, err := r.Write([]byte("late")); n != 0 || err == nil {
		t.Fatalf("Write after retire: %d, %v", n, err)
	}
	if !bytes.Equal(buf, make([]byte, 4)) {
		t.Fatal("a retired ring wrote into its old buffer")
	}
}

func TestRingZeroLength(t *testing.T) {
	r := NewRing(0)
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Errorf("empty Read: %d, %v", n, err)
	}
	if n, err := r.Write(nil); n != 0 || err != nil {
		t.Errorf("empty Write: %d, %v", n, err)
	}
	if len(r.buf) != DefaultRingSize {
		t.Errorf("NewRing(0) has %d bytes", len(r.buf))
	}
}
