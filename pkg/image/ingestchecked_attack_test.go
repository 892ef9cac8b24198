package image

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestAttackIngestZstdWindow: a registry cache entry's zstd blob of 32 KiB whose frame asks for
// a 512 MiB window (the decoder's default bound) and then fills it with RLE blocks made the
// decoder allocate 516 MiB, per concurrent conversion, before any digest check. The window is
// bounded: the blob is refused as not matching, with little allocated.
func TestAttackIngestZstdWindow(t *testing.T) {
	var b bytes.Buffer
	b.Write([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 19 << 3}) // no content size; window 2^(10+19)
	const blocks = 8192                                    // of 128 KiB: 1 GiB
	for i := range blocks {
		h := (128<<10)<<3 | 1<<1 // an RLE block
		if i == blocks-1 {
			h |= 1
		}
		b.Write([]byte{byte(h), byte(h >> 8), byte(h >> 16), 'a'})
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	zero, _ := v1.NewHash("sha256:" + string(bytes.Repeat([]byte("0"), 64)))
	err := IngestChecked(context.Background(), t.TempDir(), bytes.NewReader(b.Bytes()),
		BlobWant{Digest: zero, Size: int64(b.Len()), DiffID: zero, UncompressedSize: 1 << 30, Compression: Zstd}, io.Discard)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if err == nil {
		t.Errorf("hostile blob accepted")
	}
	if alloc > 128<<20 {
		t.Errorf("a %d-byte blob made the decoder allocate %d MiB (%v)", b.Len(), alloc>>20, err)
	}
}
