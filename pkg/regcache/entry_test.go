package regcache

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hexB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	hexC = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

func goodManifest(layerSize int64) []byte {
	b, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: ConfigMediaType, Size: 300, Digest: v1.Hash{Algorithm: "sha256", Hex: hexA}},
		Layers: []v1.Descriptor{{MediaType: types.OCILayer, Size: layerSize, Digest: v1.Hash{Algorithm: "sha256", Hex: hexB}}}})
	return b
}

func goodEntry() Entry {
	return Entry{Version: entryVersion, Key: "payload-x", Compression: "gzip", MediaType: string(types.OCILayer),
		Digest: "sha256:" + hexB, Size: 1000, DiffID: "sha256:" + hexC, UncompressedSize: 5000, Meta: json.RawMessage(`{"diff_id":"x"}`)}
}

func TestDecodeManifest(t *testing.T) {
	cfg, layer, err := DecodeManifest(goodManifest(1000), DefaultMaxBytes)
	if err != nil || cfg.Size != 300 || layer.Digest.Hex != hexB {
		t.Fatalf("good manifest: %v %v %v", cfg, layer, err)
	}
	for name, b := range map[string][]byte{
		"huge layer":  goodManifest(1 << 50),
		"empty layer": goodManifest(0),
		"not json":    []byte("{"),
		"too long":    []byte(strings.Repeat(" ", MaxManifest+1)),
		"two layers":  []byte(strings.Replace(string(goodManifest(10)), `"layers":[`, `"layers":[{"mediaType":"x","size":1,"digest":"sha256:`+hexC+`"},`, 1)),
		"config type": []byte(strings.Replace(string(goodManifest(10)), string(ConfigMediaType), "application/json", 1)),
	} {
		if _, _, err := DecodeManifest(b, DefaultMaxBytes); !errors.Is(err, ErrEntry) {
			t.Errorf("%s: err %v, want ErrEntry", name, err)
		}
	}
}

func TestDecodeEntry(t *testing.T) {
	layer := v1.Descriptor{MediaType: types.OCILayer, Size: 1000, Digest: v1.Hash{Algorithm: "sha256", Hex: hexB}}
	b, _ := json.Marshal(goodEntry())
	if _, err := DecodeEntry(b, layer, "payload-x", "gzip", DefaultMaxBytes); err != nil {
		t.Fatalf("good entry: %v", err)
	}
	for name, mod := range map[string]func(e *Entry){
		"other key":         func(e *Entry) { e.Key = "payload-y" },
		"other blob":        func(e *Entry) { e.Digest = "sha256:" + hexA },
		"other size":        func(e *Entry) { e.Size = 999 },
		"bad diffID":        func(e *Entry) { e.DiffID = "sha256:zz" },
		"huge uncompressed": func(e *Entry) { e.UncompressedSize = 1 << 50 },
		"other version":     func(e *Entry) { e.Version = 2 },
		"other compression": func(e *Entry) { e.Compression = "zstd" },
	} {
		e := goodEntry()
		mod(&e)
		b, _ := json.Marshal(e)
		if _, err := DecodeEntry(b, layer, "payload-x", "gzip", DefaultMaxBytes); !errors.Is(err, ErrEntry) {
			t.Errorf("%s: err %v, want ErrEntry", name, err)
		}
	}
	if _, err := DecodeEntry([]byte(`{"version":1,"extra":true}`), layer, "payload-x", "gzip", DefaultMaxBytes); !errors.Is(err, ErrEntry) {
		t.Errorf("unknown field: %v", err)
	}
}

// TestTag: a tag is a valid registry tag, the same for the same key, another for another key
// or compression.
func TestTag(t *testing.T) {
	a, b, c := Tag("k", "gzip"), Tag("k", "zstd"), Tag("k2", "gzip")
	if a != Tag("k", "gzip") || a == b || a == c || len(a) > 128 || !strings.HasPrefix(a, "layer-") {
		t.Errorf("tags %s %s %s", a, b, c)
	}
}

// FuzzDecodeManifest: any bytes decode to an error or to a manifest within the bounds.
func FuzzDecodeManifest(f *testing.F) {
	f.Add(goodManifest(1000))
	f.Add(goodManifest(1 << 50))
	f.Add([]byte(`{"schemaVersion":2,"layers":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, layer, err := DecodeManifest(b, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrEntry) {
				t.Fatalf("error not ErrEntry: %v", err)
			}
			return
		}
		if layer.Size <= 0 || layer.Size > 1<<20 || cfg.Size <= 0 || cfg.Size > MaxConfig || cfg.MediaType != ConfigMediaType {
			t.Fatalf("accepted out of bounds: %+v %+v", cfg, layer)
		}
	})
}

// FuzzDecodeEntry: any bytes decode to an error or to an entry that matches its layer and key.
func FuzzDecodeEntry(f *testing.F) {
	b, _ := json.Marshal(goodEntry())
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	layer := v1.Descriptor{MediaType: types.OCILayer, Size: 1000, Digest: v1.Hash{Algorithm: "sha256", Hex: hexB}}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b, layer, "payload-x", "gzip", 1<<20)
		if err != nil {
			if !errors.Is(err, ErrEntry) {
				t.Fatalf("error not ErrEntry: %v", err)
			}
			return
		}
		if e.Key != "payload-x" || e.Digest != layer.Digest.String() || e.Size != layer.Size || e.UncompressedSize > 1<<20 || e.UncompressedSize <= 0 {
			t.Fatalf("accepted %+v", e)
		}
	})
}
