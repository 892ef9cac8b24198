package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/vm2image/vm2image/internal/ctxio"
)

// BlobWant is what a layer blob from an untrusted place (a registry cache) must be: its
// compressed digest and size, its diffID and uncompressed size, and its compression.
type BlobWant struct {
	Digest           v1.Hash
	Size             int64
	DiffID           v1.Hash
	UncompressedSize int64
	Compression      Compression
}

// ErrBlobMismatch: a blob is not what it was announced as (digest, diffID, size, compression).
var ErrBlobMismatch = errors.New("blob does not match its descriptor")

// IngestChecked stores r, a compressed layer blob, in the blob store at dir (Assemble's Store)
// and writes its uncompressed tar to tar as it goes. Nothing is trusted: more bytes than
// want.Size (compressed) or want.UncompressedSize (uncompressed) stop the copy, and the blob is
// committed to the store only when its digest, size, diffID and compression are all want's; on
// an error tar has received bytes the caller must discard.
func IngestChecked(ctx context.Context, dir string, r io.Reader, want BlobWant, tar io.Writer) (err error) {
	st := blobStore{dir: dir}
	tmp, err := st.tempFile("cached-*")
	if err != nil {
		return err
	}
	defer removeOnError(tmp, &err)
	bw := bufio.NewWriterSize(tmp, 1<<20)
	digest := newHashCounter()
	limited := &limitReader{r: r, n: want.Size, what: "compressed"}
	br := bufio.NewReaderSize(io.TeeReader(limited, io.MultiWriter(bw, digest)), 1<<20)
	if c := sniffCompression(br); c != want.Compression.orDefault() {
		return fmt.Errorf("blob is %s-compressed, want %s: %w", c, want.Compression.orDefault(), ErrBlobMismatch)
	}
	d, err := newCheckedDecompressor(br, want.Compression.orDefault())
	if err != nil {
		return fmt.Errorf("reading blob %s: %w: %w", want.Digest, err, ErrBlobMismatch)
	}
	diffID := newHashCounter()
	ulimited := &limitReader{r: d, n: want.UncompressedSize, what: "uncompressed"}
	_, err = ctxio.Copy(ctx, io.MultiWriter(diffID, tar), ulimited)
	d.Close()
	if err == nil {
		_, err = ctxio.Copy(ctx, io.Discard, br) // bytes after the compressed stream belong to the blob
	}
	if err != nil {
		return fmt.Errorf("reading blob %s: %w", want.Digest, err)
	}
	if err := closeBuffered(bw, tmp); err != nil {
		return fmt.Errorf("writing layer blob: %w", err)
	}
	got := layerMeta{Digest: digest.sum(), DiffID: diffID.sum(), Size: digest.n, UncompressedSize: diffID.n, Compression: want.Compression.orDefault()}
	switch {
	case got.Digest != want.Digest || got.Size != want.Size:
		return fmt.Errorf("blob has digest %s (%d bytes), want %s (%d bytes): %w", got.Digest, got.Size, want.Digest, want.Size, ErrBlobMismatch)
	case got.DiffID != want.DiffID || got.UncompressedSize != want.UncompressedSize:
		return fmt.Errorf("blob %s uncompresses to diffID %s (%d bytes), want %s (%d bytes): %w",
			want.Digest, got.DiffID, got.UncompressedSize, want.DiffID, want.UncompressedSize, ErrBlobMismatch)
	}
	_, err = st.commit(tmp.Name(), got)
	return err
}

// limitReader fails (instead of ending) once more than n bytes are read.
type limitReader struct {
	r    io.Reader
	n    int64
	what string
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, fmt.Errorf("more than the announced %s size: %w", l.what, ErrBlobMismatch)
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, fmt.Errorf("more than the announced %s size: %w", l.what, ErrBlobMismatch)
	}
	return n, err
}

// StoredBlob says whether the blob store at dir holds the layer of diffID compressed with c,
// and its compressed digest.
func StoredBlob(dir string, diffID v1.Hash, c Compression) (v1.Layer, bool) {
	l, ok := blobStore{dir: dir}.lookup(diffID, c)
	if !ok {
		return nil, false
	}
	return l, true
}

// UncompressedSize is the layer's uncompressed size, recorded when it was stored.
func (l *fileLayer) UncompressedSize() (int64, error) { return l.meta.UncompressedSize, nil }

// maxIngestWindow bounds the window a zstd blob from an untrusted place may ask for: the
// decoder keeps that much history, so a 32 KiB blob asking for the default bound (512 MiB)
// made it allocate 516 MiB. The layers vm2image compresses use windows of 8 MiB at most.
const maxIngestWindow = 64 << 20

// newCheckedDecompressor is newDecompressor with zstd's window bounded by maxIngestWindow.
func newCheckedDecompressor(r io.Reader, c Compression) (io.ReadCloser, error) {
	if c != Zstd {
		return newDecompressor(r, c)
	}
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(maxIngestWindow))
	if err != nil {
		return nil, err
	}
	return d.IOReadCloser(), nil
}
