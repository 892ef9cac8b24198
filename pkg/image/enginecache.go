package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// An image saved from the engine is remembered by its ID (the digest of its config): the config
// and the manifest made for it are kept in the store (DIR/configs/sha256/HEX and HEX.manifest)
// beside its layers, so the next resolution of the
// same image asks the engine only for the ID and reads the rest from the store. A config whose
// bytes no longer hash to its name is ignored, and the image is saved again.

func (s blobStore) configPath(id string) (string, bool) {
	hexID, ok := strings.CutPrefix(id, "sha256:")
	if !ok || len(hexID) != 64 || strings.Trim(hexID, "0123456789abcdef") != "" {
		return "", false
	}
	return filepath.Join(s.dir, "configs", "sha256", hexID), true
}

// engineImage returns the image of engine ID id from the store, when the store holds its config
// and every layer.
func (s blobStore) engineImage(id string) (v1.Image, bool) {
	p, ok := s.configPath(id)
	if !ok {
		return nil, false
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	sum := sha256.Sum256(raw)
	if "sha256:"+hex.EncodeToString(sum[:]) != id {
		return nil, false
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, false
	}
	rawM, err := os.ReadFile(p + ".manifest")
	if err != nil {
		return nil, false
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawM))
	if err != nil || m.Config.Digest.String() != id || len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, false
	}
	// The very blobs the manifest names, so the image (and its digest, which keys the
	// packages cache) is the one the first resolution made.
	layers := make([]v1.Layer, len(m.Layers))
	for k, desc := range m.Layers {
		l, ok := s.lookupBlob(cfg.RootFS.DiffIDs[k], desc.Digest)
		if !ok || l.meta.Size != desc.Size {
			return nil, false
		}
		layers[k] = l.withMediaType(desc.MediaType)
	}
	img, err := imageFromRaw(rawM, m.MediaType, raw, layers)
	return img, err == nil
}

// lookupBlob is lookup for the blob digest of diffID, whatever its compression.
func (s blobStore) lookupBlob(diffID, digest v1.Hash) (*fileLayer, bool) {
	for _, c := range []Compression{Gzip, Zstd} {
		if l, ok := s.lookup(diffID, c); ok && l.meta.Digest == digest {
			return l, true
		}
	}
	return nil, false
}

// rememberEngineImage keeps img's config for engineImage; a failure only costs the next run a
// `docker save`.
func (s blobStore) rememberEngineImage(img v1.Image) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return
	}
	rawM, err := img.RawManifest()
	if err != nil {
		return
	}
	sum := sha256.Sum256(raw)
	if p, ok := s.configPath("sha256:" + hex.EncodeToString(sum[:])); ok {
		if writeFileAtomic(p+".manifest", rawM) == nil {
			_ = writeFileAtomic(p, raw)
		}
	}
}
