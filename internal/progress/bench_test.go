package progress

import (
	"io"
	"testing"
)

type zeros struct{ left int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.left))
	clear(p[:n])
	z.left -= int64(n)
	return n, nil
}

type counted struct {
	r    io.Reader
	d    *Display
	done int64
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	c.d.Bytes("diff", c.done, 1<<30)
	return n, err
}

const benchBytes = 256 << 20

// BenchmarkCopyPlain is the baseline: 256 MiB copied in 32 KiB reads, no progress.
func BenchmarkCopyPlain(b *testing.B) {
	b.SetBytes(benchBytes)
	for b.Loop() {
		io.CopyBuffer(io.Discard, &zeros{benchBytes}, make([]byte, 32<<10))
	}
}

// BenchmarkCopyCounted: the same with every read reported to a display (plain mode).
func BenchmarkCopyCounted(b *testing.B) {
	d := New(io.Discard, Plain)
	defer d.Close()
	b.SetBytes(benchBytes)
	for b.Loop() {
		io.CopyBuffer(io.Discard, &counted{r: &zeros{benchBytes}, d: d}, make([]byte, 32<<10))
	}
}

// BenchmarkFleetVMBytes: one bytes report of a fleet's VM (JSON mode, the costliest: an event
// every half second at most), per report.
func BenchmarkFleetVMBytes(b *testing.B) {
	f := NewFleet(io.Discard, JSON)
	defer f.Close()
	v := f.VM("vm1")
	v.Phase("diff")
	var n int64
	for b.Loop() {
		n += 32 << 10
		v.Bytes("diff", n, 1<<40)
	}
}
