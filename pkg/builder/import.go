package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// ErrImport marks an entry from elsewhere (a registry cache) whose record is not of the key,
// the base or the layer it claims.
var ErrImport = errors.New("bad imported layer cache entry")

// EntryKey is the cache key Build uses for in (after the VM's configuration is filtered).
func EntryKey(in Input) string {
	if in.Plan != nil {
		in.RepoFiles, _ = pkgmgr.FilterConfig(in.Plan.Manager, in.RepoFiles)
	}
	return CacheKey(in)
}

// EntryMeta returns the record (meta.json) of key's entry in cacheDir, to store it elsewhere
// beside the layer.
func EntryMeta(cacheDir, key string) ([]byte, error) {
	if _, err := readMeta(filepath.Join(cacheDir, key)); err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(cacheDir, key, metaFile))
}

// Imported is an entry to bring into the layer cache from elsewhere: its record and the
// layer's diffID and size that the record must name.
type Imported struct {
	Meta       []byte
	DiffID     string
	Size       int64
	BaseDigest string
}

// Import makes key's entry in cacheDir from im when the cache lacks it: the record is decoded
// strictly and must be of key, of im's base and of the layer im names; fetch writes the layer
// (and checks it). A cache that holds the entry already is left alone (imported false).
func Import(ctx context.Context, cacheDir, key string, im Imported, fetch func(ctx context.Context, layerPath string) error) (imported bool, err error) {
	m, err := decodeImported(im, key)
	if err != nil {
		return false, err
	}
	if err := cache.MkdirPrivate(cacheDir, nil); err != nil {
		return false, fmt.Errorf("creating layer cache: %w", err)
	}
	d := layerDir(cacheDir)
	hit, l, err := d.Acquire(ctx, key)
	if err != nil {
		return false, err
	}
	defer l.Release()
	if hit {
		return false, nil
	}
	tmp, err := d.NewTemp(key)
	if err != nil {
		return false, err
	}
	err = fetch(ctx, filepath.Join(tmp, layerFile))
	if err == nil {
		err = writeMeta(tmp, m)
	}
	if err == nil {
		_, err = readMeta(tmp) // the layer has the size the record says
	}
	if err == nil {
		err = d.Commit(key, tmp, l)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return false, err
	}
	return true, nil
}

func decodeImported(im Imported, key string) (*meta, error) {
	dec := json.NewDecoder(bytes.NewReader(im.Meta))
	dec.DisallowUnknownFields()
	var m meta
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImport, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the record", ErrImport)
	}
	switch {
	case m.Version != metaVersion:
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrImport, m.Version, metaVersion)
	case m.Key != key:
		return nil, fmt.Errorf("%w: the record is of key %q, not %q", ErrImport, m.Key, key)
	case m.BaseDigest != im.BaseDigest:
		return nil, fmt.Errorf("%w: the record is of base %s, not %s", ErrImport, m.BaseDigest, im.BaseDigest)
	case m.LayerDiffID != im.DiffID || m.LayerSize != im.Size:
		return nil, fmt.Errorf("%w: the record names layer %s (%d bytes), the entry %s (%d bytes)", ErrImport, m.LayerDiffID, m.LayerSize, im.DiffID, im.Size)
	}
	return &m, nil
}
