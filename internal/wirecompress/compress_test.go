package wirecompress

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/vm2image/vm2image/pkg/wire"
)

func TestCompressorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, zstdChunk - 1, zstdChunk, zstdChunk + 1, 5*zstdChunk + 12345}
	for _, name := range []string{wire.CompressZstd, wire.CompressGzip, wire.CompressNone} {
		for _, n := range sizes {
			data := make([]byte, n)
			for i := range data { // compressible but not trivial
				data[i] = byte(rng.IntN(16))
			}
			var buf bytes.Buffer
			cw, err := NewCompressor(&buf, name, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Uneven writes cross chunk boundaries.
			for rest := data; len(rest) > 0; {
				k := min(len(rest), 1+rng.IntN(300000))
				if _, err := cw.Write(rest[:k]); err != nil {
					t.Fatal(err)
				}
				rest = rest[k:]
			}
			if err := cw.Close(); err != nil {
				t.Fatal(err)
			}
			dr, err := NewDecompressor(bytes.NewReader(buf.Bytes()), name)
			if err != nil {
				t.Fatalf("%s %d: %v", name, n, err)
			}
			got, err := io.ReadAll(dr)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s %d bytes: round trip gave %d bytes, %v", name, n, len(got), err)
			}
			if name == wire.CompressZstd && n > 0 {
				// The concatenated frames decode with the reference zstd tool too.
				if _, err := exec.LookPath("zstd"); err == nil {
					cmd := exec.Command("zstd", "-d", "-q", "-c")
					cmd.Stdin = bytes.NewReader(buf.Bytes())
					out, err := cmd.Output()
					if err != nil || !bytes.Equal(out, data) {
						t.Fatalf("zstd -d: %d bytes, %v", len(out), err)
					}
				}
			}
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestPzstdWriteError(t *testing.T) {
	cw, err := NewCompressor(&failWriter{n: 1000}, wire.CompressZstd, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 8*zstdChunk)
	rand.NewChaCha8([32]byte{3, 4}).Read(data)
	_, werr := cw.Write(data)
	cerr := cw.Close()
	if werr == nil && cerr == nil {
		t.Fatal("a failing destination gave no error")
	}
}
