package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusedSignatures checks that rdiff's default (RabinKarp) and MD4 signatures are refused,
// naming their magic, rather than giving an all-literal delta.
func TestRefusedSignatures(t *testing.T) {
	requireRdiff(t)
	dir := t.TempDir()
	old := writeFile(t, dir, "old", randBytes(20, 100000))
	for _, c := range []struct {
		args  []string
		magic string
	}{
		{[]string{"signature"}, "0x72730147"},
		{[]string{"signature", "-R", "rabinkarp", "-H", "md4"}, "0x72730146"},
		{[]string{"signature", "-R", "rollsum", "-H", "md4"}, "0x72730136"},
	} {
		sigPath := filepath.Join(dir, "sig")
		rdiff(t, append(c.args, "-f", old, sigPath)...)
		_, err := ParseSignature(bytes.NewReader(readFile(t, sigPath)), 1<<20)
		if !errors.Is(err, ErrUnsupportedSignature) || !strings.Contains(err.Error(), c.magic) {
			t.Errorf("rdiff %q: got %v, want ErrUnsupportedSignature naming %s", c.args, err, c.magic)
		}
	}
}

func sigHeader(magic, blockLen, strongLen uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, magic)
	b = binary.BigEndian.AppendUint32(b, blockLen)
	return binary.BigEndian.AppendUint32(b, strongLen)
}

// TestBadSignatures checks truncated, garbage and oversized signatures.
func TestBadSignatures(t *testing.T) {
	_, good := sigOf(t, randBytes(21, 10000), 1000)
	for _, c := range []struct {
		name    string
		sig     []byte
		maxSize int64
		want    error
	}{
		{"empty", nil, 1 << 20, ErrCorrupt},
		{"half a header", good[:6], 1 << 20, ErrCorrupt},
		{"cut in a record", good[:len(good)-5], 1 << 20, ErrCorrupt},
		{"cut in a weak sum", good[:12+36+2], 1 << 20, ErrCorrupt},
		{"garbage", []byte("this is not a signature at all"), 1 << 20, ErrCorrupt},
		{"a delta", sigHeader(DeltaMagic, 1, 1), 1 << 20, ErrUnsupportedSignature},
		{"block length 0", sigHeader(SigMagic, 0, 32), 1 << 20, ErrCorrupt},
		{"absurd block length", sigHeader(SigMagic, 1<<31, 32), 1 << 20, ErrTooLarge},
		{"strong length 0", sigHeader(SigMagic, 2048, 0), 1 << 20, ErrCorrupt},
		{"strong length 33", sigHeader(SigMagic, 2048, 33), 1 << 20, ErrCorrupt},
		{"absurd strong length", sigHeader(SigMagic, 2048, 1<<31), 1 << 20, ErrCorrupt},
		{"over maxSize", good, int64(len(good) - 1), ErrTooLarge},
		{"maxSize below a header", good, 3, ErrTooLarge},
	} {
		_, err := ParseSignature(bytes.NewReader(c.sig), c.maxSize)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if sig, err := ParseSignature(bytes.NewReader(good), int64(len(good))); err != nil || sig.Size() != int64(len(good)) || sig.Blocks() != 10 {
		t.Errorf("signature of exactly maxSize: %v", err)
	}
	// A huge claimed size is never allocated up front: the reader runs dry first.
	endless := io.MultiReader(bytes.NewReader(sigHeader(SigMagic, 2048, 32)), zeros{})
	if _, err := ParseSignature(endless, 4<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("endless signature: got %v, want ErrTooLarge", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// deltaOf builds a delta from commands.
func deltaOf(cmds ...[]byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, DeltaMagic), bytes.Join(cmds, nil)...)
}

// TestBadDeltas checks that malformed deltas are errors, never panics nor output beyond maxOut.
func TestBadDeltas(t *testing.T) {
	basis := randBytes(22, 1000)
	nw := append(bytes.Clone(basis[100:600]), "hello"...)
	sig, _ := sigOf(t, basis, 64)
	var good bytes.Buffer
	if _, err := Delta(context.Background(), sig, bytes.NewReader(nw), &good); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		delta  []byte
		maxOut int64
		want   error
	}{
		{"empty", nil, 1 << 20, ErrCorrupt},
		{"bad magic", sigHeader(SigMagic, 1, 1), 1 << 20, ErrCorrupt},
		{"no end", deltaOf([]byte{3, 'a', 'b', 'c'}), 1 << 20, ErrCorrupt},
		{"short literal", deltaOf([]byte{10, 'a'}), 1 << 20, ErrCorrupt},
		{"short parameters", deltaOf([]byte{0x4f, 0, 0}), 1 << 20, ErrCorrupt},
		{"reserved command", deltaOf([]byte{0x55, 0}), 1 << 20, ErrCorrupt},
		{"trailing data", deltaOf([]byte{1, 'x', 0, 0}), 1 << 20, ErrCorrupt},
		{"copy beyond the basis", deltaOf([]byte{0x4a, 0x03, 0xe0, 0x00, 0x10, 0}), 1 << 20, ErrCorrupt},
		{"copy starting past the basis", deltaOf([]byte{0x49, 0x10, 0x00, 1, 0}), 1 << 20, ErrCorrupt},
		{"negative position", deltaOf([]byte{0x51, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0}), 1 << 20, ErrCorrupt},
		{"huge literal", deltaOf([]byte{0x44, 0x7f, 0, 0, 0, 0, 0, 0, 0, 'x', 0}), 1 << 20, ErrTooLarge},
		{"huge copy", deltaOf([]byte{0x48, 0, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0}), 1 << 20, ErrTooLarge},
		{"overflowing copy", deltaOf([]byte{0x54, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0}), -1, ErrCorrupt},
		{"over maxOut", good.Bytes(), int64(len(nw) - 1), ErrTooLarge},
	}
	// Every truncation of a good delta is corrupt.
	for n := range good.Len() {
		cases = append(cases, struct {
			name   string
			delta  []byte
			maxOut int64
			want   error
		}{"truncated", good.Bytes()[:n], 1 << 20, ErrCorrupt})
	}
	for _, c := range cases {
		var out bytes.Buffer
		n, err := Patch(context.Background(), bytes.NewReader(basis), bytes.NewReader(c.delta), &out, c.maxOut)
		if !errors.Is(err, c.want) {
			t.Errorf("%s (%d bytes): got %v, want %v", c.name, len(c.delta), err, c.want)
		}
		if n != int64(out.Len()) || (c.maxOut >= 0 && n > c.maxOut) {
			t.Errorf("%s: wrote %d bytes, reported %d, maxOut %d", c.name, out.Len(), n, c.maxOut)
		}
	}
	// Hand-made valid deltas: immediate literals, copies of every width, an empty copy.
	d := deltaOf([]byte{2, 'h', 'i'}, []byte{0x45, 10, 5}, []byte{0x4b, 0, 20, 0, 0, 0, 3},
		[]byte{0x50, 0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 2}, []byte{0x41, 1, '!'}, []byte{0x45, 0, 0}, []byte{0})
	want := append(append(append([]byte("hi"), basis[10:15]...), basis[20:23]...), append(basis[30:32], '!')...)
	var out bytes.Buffer
	if _, err := Patch(context.Background(), bytes.NewReader(basis), bytes.NewReader(d), &out, int64(len(want))); err != nil || !bytes.Equal(out.Bytes(), want) {
		t.Errorf("hand-made delta: %v, %q", err, out.Bytes())
	}
}

// TestCanceled checks that every operation stops on a canceled context.
func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := randBytes(23, 1<<20)
	sig, _ := sigOf(t, data, 0)
	if err := Signature(ctx, bytes.NewReader(data), io.Discard, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("signature: %v", err)
	}
	var d bytes.Buffer
	if _, err := Delta(ctx, sig, bytes.NewReader(data), &d); !errors.Is(err, context.Canceled) {
		t.Errorf("delta: %v", err)
	}
	if _, err := Delta(context.Background(), sig, bytes.NewReader(data), &d); err != nil {
		t.Fatal(err)
	}
	if _, err := Patch(ctx, bytes.NewReader(data), &d, io.Discard, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("patch: %v", err)
	}
}
