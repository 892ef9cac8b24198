package verify

import (
	"io"
	"testing"

	"github.com/vm2image/vm2image/internal/progress"
)

type zeroReader struct{ left int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.left))
	clear(p[:n])
	z.left -= int64(n)
	return n, nil
}

func (z *zeroReader) Close() error { return nil }

const benchBytes = 256 << 20

// BenchmarkLayerReadPlain is the baseline: 256 MiB read in 32 KiB reads, not counted.
func BenchmarkLayerReadPlain(b *testing.B) {
	b.SetBytes(benchBytes)
	for b.Loop() {
		io.CopyBuffer(io.Discard, &zeroReader{benchBytes}, make([]byte, 32<<10))
	}
}

// BenchmarkLayerReadCounted: the same through verify's counter, every read reported to a
// plain display as verify's compare phase does.
func BenchmarkLayerReadCounted(b *testing.B) {
	d := progress.New(io.Discard, progress.Plain)
	defer d.Close()
	c := newCounter(func(done, total int64) { d.Bytes("compare", done, total) })
	c.total.Store(1 << 40)
	b.SetBytes(benchBytes)
	for b.Loop() {
		io.CopyBuffer(io.Discard, c.reader(&zeroReader{benchBytes}), make([]byte, 32<<10))
	}
}
