package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func shaOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// TestIngestChecked: a blob is stored only when it is exactly what was announced; more bytes
// than announced (compressed or not: a decompression bomb) stop the copy.
func TestIngestChecked(t *testing.T) {
	tarBytes := bytes.Repeat([]byte("layer tar "), 1000)
	blob := gzipped(t, tarBytes)
	good := BlobWant{Digest: shaOf(blob), Size: int64(len(blob)), DiffID: shaOf(tarBytes), UncompressedSize: int64(len(tarBytes)), Compression: Gzip}
	dir := t.TempDir()
	var out bytes.Buffer
	if err := IngestChecked(context.Background(), dir, bytes.NewReader(blob), good, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), tarBytes) {
		t.Error("the uncompressed tar differs")
	}
	if l, ok := StoredBlob(dir, good.DiffID, Gzip); !ok {
		t.Error("the blob was not stored")
	} else if d, _ := l.Digest(); d != good.Digest {
		t.Errorf("stored digest %s", d)
	}
	bomb := gzipped(t, make([]byte, 10<<20))
	for name, tc := range map[string]struct {
		blob []byte
		mod  func(w *BlobWant)
	}{
		"other digest":      {blob, func(w *BlobWant) { w.Digest = shaOf([]byte("x")) }},
		"other diffID":      {blob, func(w *BlobWant) { w.DiffID = shaOf([]byte("x")) }},
		"longer than said":  {blob, func(w *BlobWant) { w.Size-- }},
		"shorter than said": {blob, func(w *BlobWant) { w.Size++ }},
		"zstd announced":    {blob, func(w *BlobWant) { w.Compression = Zstd }},
		"bomb":              {bomb, func(w *BlobWant) { w.Digest, w.Size = shaOf(bomb), int64(len(bomb)) }},
	} {
		w := good
		tc.mod(&w)
		d := t.TempDir()
		n := &countWriter{}
		err := IngestChecked(context.Background(), d, bytes.NewReader(tc.blob), w, n)
		if !errors.Is(err, ErrBlobMismatch) {
			t.Errorf("%s: err %v, want ErrBlobMismatch", name, err)
		}
		if n.n > w.UncompressedSize+64<<10 {
			t.Errorf("%s: %d uncompressed bytes written, announced %d", name, n.n, w.UncompressedSize)
		}
		if _, ok := StoredBlob(d, w.DiffID, w.Compression); ok {
			t.Errorf("%s: a refused blob was stored", name)
		}
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
