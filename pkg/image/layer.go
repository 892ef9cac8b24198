package image

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression names a layer compression.
type Compression string

const (
	// Gzip is the default: every Docker engine loads it.
	Gzip Compression = "gzip"
	// Zstd layers are smaller and faster, but the Docker engine 20.10 (API 1.41) cannot load
	// them: use them for registries and OCI layouts read by containerd, podman or newer engines.
	Zstd Compression = "zstd"
)

func (c Compression) orDefault() Compression {
	if c == "" {
		return Gzip
	}
	return c
}

func (c Compression) validate() error {
	switch c.orDefault() {
	case Gzip, Zstd:
		return nil
	}
	return fmt.Errorf("unknown compression %q (gzip, zstd)", string(c))
}

// mediaType is the layer media type of c in an OCI or a Docker manifest.
func (c Compression) mediaType(oci bool) types.MediaType {
	switch {
	case c.orDefault() == Zstd:
		return types.OCILayerZStd
	case oci:
		return types.OCILayer
	}
	return types.DockerLayer
}

// newCompressor wraps w in c's compressor. Level 0 is the library's default; the output depends
// only on the input, c and level (fixed block sizes, no timestamps), so layers are reproducible.
func newCompressor(w io.Writer, c Compression, level int) (io.WriteCloser, error) {
	conc := runtime.GOMAXPROCS(0)
	switch c.orDefault() {
	case Gzip:
		if level == 0 {
			level = pgzip.DefaultCompression
		}
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, err
		}
		if err := zw.SetConcurrency(1<<20, 2*conc); err != nil {
			return nil, err
		}
		return zw, nil
	case Zstd:
		lvl := zstd.SpeedDefault
		if level > 0 {
			lvl = zstd.EncoderLevelFromZstd(level)
		}
		return zstd.NewWriter(w, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(conc))
	}
	return nil, c.validate()
}

// newDecompressor reads what newCompressor(c) wrote.
func newDecompressor(r io.Reader, c Compression) (io.ReadCloser, error) {
	switch c {
	case Gzip:
		return pgzip.NewReader(r)
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case "none":
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression %q", string(c))
}

// sniffCompression reports the compression of the stream behind br from its magic bytes:
// "gzip", "zstd", "bzip2", "xz" or "none".
func sniffCompression(br *bufio.Reader) Compression {
	b, _ := br.Peek(6)
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return Gzip
	case len(b) >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd:
		return Zstd
	case len(b) >= 3 && string(b[:3]) == "BZh":
		return "bzip2"
	case len(b) >= 6 && string(b) == "\xfd7zXZ\x00":
		return "xz"
	}
	return "none"
}

// fileLayer is a compressed layer blob on disk whose digests and sizes were computed while it
// was written, so it can be read any number of times without hashing or compressing again.
type fileLayer struct {
	path      string
	meta      layerMeta
	mediaType types.MediaType
}

// layerMeta is what a blob store records about a layer blob.
type layerMeta struct {
	Digest           v1.Hash     `json:"digest"`
	DiffID           v1.Hash     `json:"diffID"`
	Size             int64       `json:"size"`
	UncompressedSize int64       `json:"uncompressedSize"`
	Compression      Compression `json:"compression"`
}

var _ v1.Layer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.meta.Digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.meta.DiffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.meta.Size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Compressed reads the blob and checks, at its end, that it still has the digest and size it
// was stored with: a blob altered in the store fails the write that reads it.
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	return &verifyingReader{f: f, h: newHashCounter(), want: l.meta}, nil
}

// verifyingReader hashes what it reads from f and fails at EOF when it is not want's blob.
type verifyingReader struct {
	f    *os.File
	h    *hashCounter
	want layerMeta
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF && (v.h.n != v.want.Size || v.h.sum() != v.want.Digest) {
		return n, fmt.Errorf("layer blob %s was altered in the store (%d bytes, digest %s): %w",
			v.want.Digest, v.h.n, v.h.sum(), ErrBlobAltered)
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }

// ErrBlobAltered: a stored layer blob no longer has the digest it was stored under.
var ErrBlobAltered = errors.New("stored blob altered")

func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	d, err := newDecompressor(bufio.NewReaderSize(f, 1<<20), l.meta.Compression)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening layer %s: %w", l.meta.Digest, err)
	}
	return &stackedCloser{Reader: d, closers: []io.Closer{d, f}}, nil
}

// withMediaType returns a copy of l that declares mt.
func (l *fileLayer) withMediaType(mt types.MediaType) *fileLayer {
	c := *l
	c.mediaType = mt
	return &c
}

type stackedCloser struct {
	io.Reader
	closers []io.Closer
}

func (s *stackedCloser) Close() error {
	var first error
	for _, c := range s.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// hashCounter hashes and counts what is written to it.
type hashCounter struct {
	h hash.Hash
	n int64
}

func newHashCounter() *hashCounter { return &hashCounter{h: sha256.New()} }

func (c *hashCounter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *hashCounter) sum() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(c.h.Sum(nil))}
}
