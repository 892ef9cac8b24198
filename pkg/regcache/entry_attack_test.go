package regcache

import (
	"encoding/json"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestAttackEntryCompressedFarLarger: an entry whose 5000-byte layer is "compressed" into 8 GiB
// (the gzip stream followed by junk, which IngestChecked reads and stores until the digest
// check) is refused before anything is downloaded.
func TestAttackEntryCompressedFarLarger(t *testing.T) {
	e := goodEntry()
	e.Size = DefaultMaxBytes
	b, _ := json.Marshal(e)
	layer := v1.Descriptor{MediaType: types.OCILayer, Size: e.Size, Digest: v1.Hash{Algorithm: "sha256", Hex: hexB}}
	if _, err := DecodeEntry(b, layer, e.Key, e.Compression, DefaultMaxBytes); !errors.Is(err, ErrEntry) {
		t.Errorf("entry of %d compressed bytes for %d accepted: %v", e.Size, e.UncompressedSize, err)
	}
}
