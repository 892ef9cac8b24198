package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// DefaultCacheDir is where package layers are cached when Options.CacheDir is empty.
const DefaultCacheDir = cache.DefaultRoot + "/" + string(cache.Layers)

// Names inside a cache entry's directory.
const (
	layerFile = "layer.tar"
	metaFile  = "meta.json"
)

// metaVersion is the version of meta.json's format; entries of another version are misses.
const metaVersion = 1

// meta is what an entry's meta.json holds: the build's figures, for reuse and for `cache ls`.
type meta struct {
	Version        int              `json:"version"`
	Key            string           `json:"key"`
	Created        time.Time        `json:"created"`
	Backend        string           `json:"backend"`
	BaseDigest     string           `json:"base_digest"`
	Manager        pkgmgr.Manager   `json:"manager"`
	Packages       int              `json:"packages"` // the install set
	LayerDiffID    string           `json:"layer_diff_id"`
	LayerSize      int64            `json:"layer_size"`
	Installed      []pkgmgr.Package `json:"installed,omitempty"`
	Missing        []pkgmgr.Package `json:"missing,omitempty"`
	VersionDiffers []pkgmgr.Change  `json:"version_differs,omitempty"`
	RootsBefore    int              `json:"roots_before"`
	RootsAfter     int              `json:"roots_after"`
	InstallTime    time.Duration    `json:"install_time"`
	LayerTime      time.Duration    `json:"layer_time"`
	Errors         []string         `json:"errors,omitempty"`
	Installer      string           `json:"installer,omitempty"`
}

func readMeta(dir string) (*meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, metaFile), err)
	}
	if m.Version != metaVersion {
		return nil, fmt.Errorf("reading %s: format version %d, want %d", filepath.Join(dir, metaFile), m.Version, metaVersion)
	}
	fi, err := os.Stat(filepath.Join(dir, layerFile))
	if err != nil {
		return nil, err
	}
	if fi.Size() != m.LayerSize {
		return nil, fmt.Errorf("reading cache entry %s: layer has %d bytes, meta says %d", dir, fi.Size(), m.LayerSize)
	}
	return &m, nil
}

func writeMeta(dir string, m *meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, metaFile), append(b, '\n'), 0o644)
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validKey reports whether name can be a cache key.
func validKey(name string) bool { return cache.ValidKey(name) }

// layerDir is the layer cache as a cache.Dir: an entry is valid when its meta.json is of the
// current format and its layer has the size the meta says.
func layerDir(cacheDir string) cache.Dir {
	return cache.Dir{Path: cacheDir, Valid: func(entry string) error { _, err := readMeta(entry); return err }}
}

// fileLock is a held lock on a cache entry (see pkg/cache).
type fileLock struct{ l *cache.Lock }

// acquire waits until it holds key's entry: a hit (m != nil) comes with a shared lock that keeps
// a prune away until it is released; a miss comes with the exclusive lock under which the caller
// builds the entry and commits it.
func acquire(ctx context.Context, cacheDir, key string) (m *meta, l *fileLock, err error) {
	d := layerDir(cacheDir)
	hit, cl, err := d.Acquire(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	if !hit {
		return nil, &fileLock{cl}, nil
	}
	if m, err = readMeta(filepath.Join(cacheDir, key)); err != nil {
		cl.Release()
		return nil, nil, err
	}
	return m, &fileLock{cl}, nil
}

// newTemp makes the private directory in which key's entry is built.
func newTemp(cacheDir, key string) (string, error) { return layerDir(cacheDir).NewTemp(key) }

// commit moves the finished entry tmp into place under the exclusive lock l, then lets readers
// in by downgrading l to a shared lock.
func commit(cacheDir, key, tmp string, l *fileLock) error {
	return layerDir(cacheDir).Commit(key, tmp, l.l)
}

func (l *fileLock) release() {
	if l != nil {
		l.l.Release()
	}
}
