package image

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/internal/ctxio"
	"github.com/vm2image/vm2image/pkg/cache"
)

// blobStore is a content-addressed directory of compressed layer blobs:
//
//	DIR/blobs/sha256/HEX         a compressed blob, named by its digest
//	DIR/layers/COMP/HEX.json     the layerMeta of the COMP blob whose diffID is sha256:HEX
//	DIR/tmp/                     blobs being written
//
// Entries are written to DIR/tmp and renamed into place, so concurrent processes that share the
// directory never see half-written blobs, and two that race to make the same entry write the same
// bytes.
type blobStore struct{ dir string }

func (s blobStore) blobPath(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

func (s blobStore) metaPath(diffID v1.Hash, c Compression) string {
	return filepath.Join(s.dir, "layers", string(c.orDefault()), diffID.Hex+".json")
}

func (s blobStore) tempFile(pattern string) (*os.File, error) {
	if err := s.mkdir("tmp"); err != nil {
		return nil, err
	}
	return os.CreateTemp(filepath.Join(s.dir, "tmp"), pattern)
}

// mkdir makes the store's subdirectory sub: the store and what it holds are private (pkg/cache).
func (s blobStore) mkdir(sub string) error {
	if err := cache.MkdirPrivate(s.dir, nil); err != nil {
		return fmt.Errorf("creating blob store: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, sub), cache.PrivateMode); err != nil {
		return fmt.Errorf("creating blob store: %w", err)
	}
	return nil
}

// lookup returns the stored layer of diffID compressed with c, if there is one.
func (s blobStore) lookup(diffID v1.Hash, c Compression) (*fileLayer, bool) {
	b, err := os.ReadFile(s.metaPath(diffID, c))
	if err != nil {
		return nil, false
	}
	var m layerMeta
	if json.Unmarshal(b, &m) != nil || m.DiffID != diffID {
		return nil, false
	}
	fi, err := os.Stat(s.blobPath(m.Digest))
	if err != nil || fi.Size() != m.Size {
		return nil, false
	}
	return s.layer(m), true
}

func (s blobStore) layer(m layerMeta) *fileLayer {
	return &fileLayer{path: s.blobPath(m.Digest), meta: m, mediaType: m.Compression.mediaType(false)}
}

// compress stores r, an uncompressed tar, compressed with c in a single pass that also computes
// the diffID (sha256 of r), the digest (sha256 of the compressed bytes) and both sizes.
func (s blobStore) compress(ctx context.Context, r io.Reader, c Compression, level int) (_ *fileLayer, err error) {
	tmp, err := s.tempFile("layer-*")
	if err != nil {
		return nil, err
	}
	defer removeOnError(tmp, &err)
	bw := bufio.NewWriterSize(tmp, 1<<20)
	digest := newHashCounter()
	zw, err := newCompressor(io.MultiWriter(bw, digest), c, level)
	if err != nil {
		return nil, err
	}
	diffID := newHashCounter()
	if _, err := ctxio.Copy(ctx, io.MultiWriter(diffID, zw), r); err != nil {
		zw.Close()
		return nil, fmt.Errorf("compressing layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing layer: %w", err)
	}
	if err := closeBuffered(bw, tmp); err != nil {
		return nil, fmt.Errorf("writing layer blob: %w", err)
	}
	m := layerMeta{Digest: digest.sum(), DiffID: diffID.sum(), Size: digest.n,
		UncompressedSize: diffID.n, Compression: c.orDefault()}
	return s.commit(tmp.Name(), m)
}

// ingest stores r, a gzip or zstd blob, byte for byte, computing its digest and, by decompressing
// it on the way, its diffID. A non-empty want is checked against the digest.
func (s blobStore) ingest(ctx context.Context, r io.Reader, want v1.Hash) (_ *fileLayer, err error) {
	tmp, err := s.tempFile("blob-*")
	if err != nil {
		return nil, err
	}
	defer removeOnError(tmp, &err)
	bw := bufio.NewWriterSize(tmp, 1<<20)
	digest := newHashCounter()
	br := bufio.NewReaderSize(io.TeeReader(r, io.MultiWriter(bw, digest)), 1<<20)
	c := sniffCompression(br)
	if c != Gzip && c != Zstd {
		return nil, fmt.Errorf("ingesting layer blob: compression %q, want gzip or zstd", string(c))
	}
	d, err := newDecompressor(br, c)
	if err != nil {
		return nil, fmt.Errorf("ingesting layer blob: %w", err)
	}
	diffID := newHashCounter()
	_, err = ctxio.Copy(ctx, diffID, d)
	d.Close()
	if err == nil {
		_, err = ctxio.Copy(ctx, io.Discard, br) // bytes after the compressed stream belong to the blob
	}
	if err != nil {
		return nil, fmt.Errorf("ingesting layer blob: %w", err)
	}
	if err := closeBuffered(bw, tmp); err != nil {
		return nil, fmt.Errorf("writing layer blob: %w", err)
	}
	if want.Hex != "" && digest.sum() != want {
		return nil, fmt.Errorf("ingesting layer blob: digest %s, want %s", digest.sum(), want)
	}
	m := layerMeta{Digest: digest.sum(), DiffID: diffID.sum(), Size: digest.n,
		UncompressedSize: diffID.n, Compression: c}
	return s.commit(tmp.Name(), m)
}

// commit renames a finished temp blob into place and records its metadata.
func (s blobStore) commit(tmp string, m layerMeta) (*fileLayer, error) {
	final := s.blobPath(m.Digest)
	if err := s.mkdir(filepath.Join("blobs", m.Digest.Algorithm)); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("storing layer blob: %w", err)
	}
	b, _ := json.Marshal(m)
	if err := writeFileAtomic(s.metaPath(m.DiffID, m.Compression), b); err != nil {
		return nil, fmt.Errorf("recording layer %s: %w", m.DiffID, err)
	}
	return s.layer(m), nil
}

// writeFileAtomic writes b to a temp file beside path and renames it over path.
func writeFileAtomic(path string, b []byte) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), cache.PrivateMode); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer removeOnError(f, &err)
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func closeBuffered(bw *bufio.Writer, f *os.File) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// removeOnError closes and removes f when *err is set.
func removeOnError(f *os.File, err *error) {
	if *err != nil {
		f.Close()
		os.Remove(f.Name())
	}
}
