package verify

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// ErrDigestMismatch is wrapped by the errors of layers whose bytes do not hash to the digest
// the manifest or the config gives them.
var ErrDigestMismatch = errors.New("digest mismatch")

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// openLayer returns the uncompressed tar stream of l. Reading it to EOF checks the blob's
// digest (the manifest's) and the uncompressed stream's (diffID, the config's): Read returns an
// error wrapping ErrDigestMismatch instead of io.EOF when either differs.
func openLayer(l v1.Layer, diffID v1.Hash) (io.ReadCloser, error) {
	digest, err := l.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading layer digest: %w", err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("opening layer blob: %w", err)
	}
	blob := newChecked(rc, digest, "blob")
	br := bufio.NewReaderSize(blob, 1<<20)
	dec, closeDec, err := decompress(br)
	if err != nil {
		rc.Close()
		return nil, err
	}
	lr := &layerReader{blob: blob, br: br, dec: dec, closeDec: closeDec, closer: rc}
	lr.tar = newChecked(dec, diffID, "diffID")
	return lr, nil
}

// decompress returns what br holds, decompressed when it starts as gzip or zstd does.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := kgzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading gzip layer: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("reading zstd layer: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil // stored uncompressed
}

// layerReader decompresses a layer blob and checks both digests at the end.
type layerReader struct {
	blob     *checked
	br       *bufio.Reader
	dec      io.Reader
	closeDec func()
	tar      *checked
	closer   io.Closer
}

func (l *layerReader) Read(p []byte) (int, error) {
	n, err := l.tar.Read(p)
	if err == io.EOF && l.dec != io.Reader(l.br) {
		// The compressed stream ended: the blob's digest covers every byte after it too.
		if _, derr := io.Copy(io.Discard, l.br); derr != nil {
			return n, derr
		}
		if _, derr := l.blob.Read(nil); derr != io.EOF {
			return n, derr
		}
	}
	return n, err
}

func (l *layerReader) Close() error {
	l.closeDec()
	return l.closer.Close()
}

// checked hashes what is read through it and, at EOF, fails unless the hash is want.
type checked struct {
	r    io.Reader
	h    hash.Hash
	want v1.Hash
	what string
	n    int64
	done error // the EOF result, once reached
}

func newChecked(r io.Reader, want v1.Hash, what string) *checked {
	c := &checked{r: r, want: want, what: what}
	if want.Algorithm == "sha256" {
		c.h = sha256.New()
	}
	return c
}

func (c *checked) Read(p []byte) (int, error) {
	if c.done != nil {
		return 0, c.done
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	if err == io.EOF {
		c.done = io.EOF
		if c.h != nil {
			if got := fmt.Sprintf("%x", c.h.Sum(nil)); got != c.want.Hex {
				c.done = fmt.Errorf("%w: %s of %d bytes is sha256:%s, want %s", ErrDigestMismatch, c.what, c.n, got, c.want)
			}
		}
		return n, c.done
	}
	return n, err
}
