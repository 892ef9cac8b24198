package delta

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// FuzzParseSignature checks that any input is parsed or refused, never a panic, and that what is
// accepted is consistent.
func FuzzParseSignature(f *testing.F) {
	_, good := sigOf(f, randBytes(30, 5000), 512)
	f.Add(good)
	f.Add(good[:20])
	f.Add(sigHeader(SigMagic, 1, 1))
	f.Add(sigHeader(0x72730147, 2048, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, err := ParseSignature(bytes.NewReader(b), 64<<10)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedSignature) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		rec := int64(weakLen + sig.StrongLen())
		if sig.Size() != int64(len(b)) || int64(sig.Blocks())*rec+headerLen != sig.Size() || sig.BlockLen() == 0 || sig.BlockLen() > MaxBlockLen {
			t.Fatalf("accepted %d bytes as %d blocks of %d, strong %d", len(b), sig.Blocks(), sig.BlockLen(), sig.StrongLen())
		}
		if sig.BlockLen() <= 4096 { // a delta against whatever was accepted works
			if _, err := Delta(context.Background(), sig, bytes.NewReader(b), &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// limitWriter fails the test on output beyond max.
type limitWriter struct {
	t   *testing.T
	n   int64
	max int64
}

func (w *limitWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n > w.max {
		w.t.Fatalf("wrote %d bytes, maxOut is %d", w.n, w.max)
	}
	return len(p), nil
}

// FuzzPatch applies fuzzed deltas to a fixed basis: never a panic, never more than maxOut.
func FuzzPatch(f *testing.F) {
	basis := randBytes(31, 3000)
	sig, _ := sigOf(f, basis, 100)
	for i, nw := range [][]byte{edit(32, basis, 5, 50), nil, []byte("short")} {
		var d bytes.Buffer
		if _, err := Delta(context.Background(), sig, bytes.NewReader(nw), &d); err != nil {
			f.Fatal(err)
		}
		f.Add(d.Bytes(), uint16(len(nw)+i))
	}
	f.Add(deltaOf([]byte{2, 'h', 'i'}, []byte{0x45, 10, 5}, []byte{0x4b, 0, 20, 0, 0, 0, 3}, []byte{0}), uint16(100))
	f.Fuzz(func(t *testing.T, delta []byte, maxOut uint16) {
		w := &limitWriter{t: t, max: int64(maxOut)}
		st, err := PatchStats(context.Background(), bytes.NewReader(basis), bytes.NewReader(delta), w, int64(maxOut))
		if st.LiteralBytes+st.CopiedBytes != w.n {
			t.Fatalf("stats %+v, wrote %d", st, w.n)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if err == nil && st.DeltaBytes != int64(len(delta)) {
			t.Fatalf("accepted delta of %d bytes, counted %d", len(delta), st.DeltaBytes)
		}
	})
}
