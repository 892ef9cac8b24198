package wirecompress

import (
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/vm2image/vm2image/pkg/wire"
)

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// zstdChunk is the size of the independent zstd frames the agent sends: large enough that the
// ratio stays close to one stream's, small enough to keep the agent's memory low.
const zstdChunk = 1 << 20

// NewCompressor wraps w in the named compressor ("" means zstd). Level 0 picks a fast default.
func NewCompressor(w io.Writer, name string, level int) (io.WriteCloser, error) {
	conc := min(runtime.GOMAXPROCS(0), 4)
	switch name {
	case "", wire.CompressZstd:
		lvl := zstd.SpeedFastest
		if level > 0 {
			lvl = zstd.EncoderLevelFromZstd(level)
		}
		// Independent frames of zstdChunk bytes, compressed on every core (see pzstd).
		return newPzstd(w, lvl, conc, zstdChunk)
	case wire.CompressGzip:
		if level == 0 {
			level = pgzip.BestSpeed
		}
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, err
		}
		if err := zw.SetConcurrency(1<<20, conc); err != nil {
			return nil, err
		}
		return zw, nil
	case wire.CompressNone:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q (zstd, gzip, none)", name)
}

// NewDecompressor reads a stream written by NewCompressor with the same name.
func NewDecompressor(r io.Reader, name string) (io.ReadCloser, error) {
	switch name {
	case "", wire.CompressZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true),
			// Bounded for a hostile agent: our encoders use windows of 8 MiB at most.
			zstd.WithDecoderMaxWindow(32<<20), zstd.WithDecoderMaxMemory(256<<20))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case wire.CompressGzip:
		return pgzip.NewReader(r)
	case wire.CompressNone:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression %q (zstd, gzip, none)", name)
}
