package regcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types and bounds of a cache entry.
const (
	// ConfigMediaType is the config of a cache manifest: an Entry.
	ConfigMediaType types.MediaType = "application/vnd.vm2image.layer-cache.config.v1+json"
	// MaxManifest and MaxConfig bound what is read of a cache manifest and of its config.
	MaxManifest = 64 << 10
	MaxConfig   = 4 << 20
	// DefaultMaxBytes bounds the compressed and the uncompressed size of a cached layer.
	DefaultMaxBytes = 8 << 30
	// entryVersion is the version of the Entry format; entries of another version are misses.
	entryVersion = 1
)

// ErrEntry marks a cache entry that is not what it claims (its manifest, config or blob):
// refused, never applied.
var ErrEntry = errors.New("bad registry cache entry")

// Entry is a cache manifest's config: what the layer is and the local cache's record of it.
type Entry struct {
	Version          int    `json:"version"`
	Key              string `json:"key"`         // the local cache key
	Compression      string `json:"compression"` // gzip or zstd
	MediaType        string `json:"media_type"`  // of the layer in an image
	Digest           string `json:"digest"`      // sha256 of the compressed blob
	Size             int64  `json:"size"`
	DiffID           string `json:"diff_id"` // sha256 of the uncompressed tar
	UncompressedSize int64  `json:"uncompressed_size"`
	// Meta is what the local cache keeps beside the layer (a payload's layer.json), checked
	// by the caller.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// Tag is the tag of key's entry for layers compressed with compression: a digest, so any key
// makes a valid tag and nobody learns the key from the tag list.
func Tag(key, compression string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("vm2image layer cache v%d\n%d:%s\n%d:%s\n", entryVersion, len(compression), compression, len(key), key)))
	return "layer-" + hex.EncodeToString(h[:])[:48]
}

// DecodeManifest reads a cache manifest: an OCI image manifest whose config is an Entry and
// which has exactly one layer, no larger than maxBytes.
func DecodeManifest(b []byte, maxBytes int64) (config, layer v1.Descriptor, err error) {
	if len(b) > MaxManifest {
		return config, layer, fmt.Errorf("%w: manifest of %d bytes, over %d", ErrEntry, len(b), MaxManifest)
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return config, layer, fmt.Errorf("%w: manifest: %v", ErrEntry, err)
	}
	switch {
	case m.SchemaVersion != 2:
		return config, layer, fmt.Errorf("%w: manifest schema %d", ErrEntry, m.SchemaVersion)
	case m.Config.MediaType != ConfigMediaType:
		return config, layer, fmt.Errorf("%w: config media type %q, want %q", ErrEntry, m.Config.MediaType, ConfigMediaType)
	case len(m.Layers) != 1:
		return config, layer, fmt.Errorf("%w: %d layers, want 1", ErrEntry, len(m.Layers))
	case m.Config.Size <= 0 || m.Config.Size > MaxConfig:
		return config, layer, fmt.Errorf("%w: config of %d bytes (1 to %d)", ErrEntry, m.Config.Size, MaxConfig)
	case m.Layers[0].Size <= 0 || m.Layers[0].Size > maxBytes:
		return config, layer, fmt.Errorf("%w: layer of %d bytes (1 to %d)", ErrEntry, m.Layers[0].Size, maxBytes)
	case m.Config.Digest.Algorithm != "sha256" || m.Layers[0].Digest.Algorithm != "sha256":
		return config, layer, fmt.Errorf("%w: digests must be sha256", ErrEntry)
	}
	return m.Config, m.Layers[0], nil
}

// DecodeEntry reads a cache manifest's config strictly and checks it against the layer
// descriptor of its manifest, the key asked for and maxBytes.
func DecodeEntry(b []byte, layer v1.Descriptor, key, compression string, maxBytes int64) (*Entry, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e Entry
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: config: %v", ErrEntry, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: config: data after the object", ErrEntry)
	}
	if err := e.check(layer, key, compression, maxBytes); err != nil {
		return nil, err
	}
	return &e, nil
}

func (e *Entry) check(layer v1.Descriptor, key, compression string, maxBytes int64) error {
	diffID, err := v1.NewHash(e.DiffID)
	switch {
	case e.Version != entryVersion:
		return fmt.Errorf("%w: format version %d, want %d", ErrEntry, e.Version, entryVersion)
	case e.Key != key:
		return fmt.Errorf("%w: entry is for key %q, not %q", ErrEntry, e.Key, key)
	case e.Compression != compression:
		return fmt.Errorf("%w: entry is %s-compressed, want %s", ErrEntry, e.Compression, compression)
	case e.Digest != layer.Digest.String() || e.Size != layer.Size || e.MediaType != string(layer.MediaType):
		return fmt.Errorf("%w: entry records blob %s (%d bytes, %s), its manifest %s (%d bytes, %s)",
			ErrEntry, e.Digest, e.Size, e.MediaType, layer.Digest, layer.Size, layer.MediaType)
	case err != nil || diffID.Algorithm != "sha256":
		return fmt.Errorf("%w: diffID %q", ErrEntry, e.DiffID)
	case e.UncompressedSize <= 0 || e.UncompressedSize > maxBytes:
		return fmt.Errorf("%w: uncompressed size %d (1 to %d)", ErrEntry, e.UncompressedSize, maxBytes)
	case e.Size > maxCompressed(e.UncompressedSize):
		return fmt.Errorf("%w: %d compressed bytes for %d uncompressed (at most %d)", ErrEntry, e.Size, e.UncompressedSize, maxCompressed(e.UncompressedSize))
	}
	return nil
}

// maxCompressed bounds the compressed size of a layer of n bytes: gzip and zstd add well under
// 1/8 to data they cannot compress. Without it an entry could pin a layer's uncompressed size
// (a payload's is the local .deb's) and still have its converter download and store gigabytes
// of bytes after the compressed stream before the digest check refuses them.
func maxCompressed(n int64) int64 { return n + n/8 + 1<<20 }
