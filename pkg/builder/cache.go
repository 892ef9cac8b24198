package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// DefaultCacheDir is where package layers are cached when Options.CacheDir is empty.
const DefaultCacheDir = "/var/cache/vm2image/layers"

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
}

// Entry is one package layer in the cache.
type Entry struct {
	Key         string         `json:"key"`
	Dir         string         `json:"dir"`
	Created     time.Time      `json:"created"`
	Size        int64          `json:"size"` // bytes the entry takes in the cache directory
	LayerDiffID string         `json:"layer_diff_id"`
	BaseDigest  string         `json:"base_digest"`
	Manager     pkgmgr.Manager `json:"manager"`
	Packages    int            `json:"packages"`
	Backend     string         `json:"backend"`
}

// List returns the complete entries of the cache directory, oldest first. Entries being built
// (KEY.tmp-*) and unreadable ones are left out; a missing directory is an empty cache.
func List(cacheDir string) ([]Entry, error) {
	des, err := os.ReadDir(cacheDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing layer cache: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if !de.IsDir() || !validKey(de.Name()) {
			continue
		}
		dir := filepath.Join(cacheDir, de.Name())
		m, err := readMeta(dir)
		if err != nil {
			continue
		}
		out = append(out, Entry{Key: m.Key, Dir: dir, Created: m.Created, Size: dirSize(dir),
			LayerDiffID: m.LayerDiffID, BaseDigest: m.BaseDigest, Manager: m.Manager,
			Packages: m.Packages, Backend: m.Backend})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Prune removes entries created more than olderThan ago (0: no age limit), then the oldest
// entries until the cache holds at most keepBytes (0 or less: no size limit). An entry whose lock
// is held (being built, or in use by a Build whose cleanup has not run) is never removed.
func Prune(cacheDir string, olderThan time.Duration, keepBytes int64) (removed []Entry, err error) {
	entries, err := List(cacheDir)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	now := time.Now()
	for _, e := range entries { // oldest first
		old := olderThan > 0 && now.Sub(e.Created) > olderThan
		over := keepBytes > 0 && total > keepBytes
		if !old && !over {
			continue
		}
		ok, err := removeEntry(cacheDir, e)
		if err != nil {
			return removed, err
		}
		if ok {
			total -= e.Size
			removed = append(removed, e)
		}
	}
	cleanTemps(cacheDir)
	return removed, nil
}

// removeEntry removes e unless its lock is held; ok says whether it did.
func removeEntry(cacheDir string, e Entry) (ok bool, err error) {
	l, err := tryLock(lockPath(cacheDir, e.Key))
	if err != nil || l == nil {
		return false, err
	}
	defer l.release()
	// Rename first so that readers never see half an entry.
	gone := filepath.Join(cacheDir, e.Key+".tmp-prune-"+randomSuffix())
	if err := os.Rename(e.Dir, gone); err != nil {
		return false, fmt.Errorf("removing cache entry %s: %w", e.Key, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return true, fmt.Errorf("removing cache entry %s: %w", e.Key, err)
	}
	_ = os.Remove(l.f.Name()) // lockers check the inode after locking, see lockOnce
	return true, nil
}

// cleanTemps removes leftovers of builds that died (KEY.tmp-*) whose lock nobody holds.
func cleanTemps(cacheDir string) {
	des, _ := os.ReadDir(cacheDir)
	for _, de := range des {
		key, _, ok := strings.Cut(de.Name(), ".tmp-")
		if !ok || !validKey(key) {
			continue
		}
		l, err := tryLock(lockPath(cacheDir, key))
		if err != nil || l == nil {
			continue
		}
		_ = os.RemoveAll(filepath.Join(cacheDir, de.Name()))
		l.release()
	}
}

// validKey reports whether name can be a cache key: hex digits, dashes and dots as SetKey makes
// them, nothing that climbs or hides.
func validKey(name string) bool {
	if name == "" || len(name) > 200 || strings.HasPrefix(name, ".") || strings.Contains(name, ".tmp-") {
		return false
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':'
		if !ok {
			return false
		}
	}
	return !strings.Contains(name, "..") && !strings.HasSuffix(name, ".lock")
}

func lockPath(cacheDir, key string) string { return filepath.Join(cacheDir, key+".lock") }

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

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fileLock is a held flock on a lock file.
type fileLock struct{ f *os.File }

// acquire waits until it holds key's entry: a hit (m != nil) comes with a shared lock that keeps
// Prune away until it is released; a miss comes with the exclusive lock under which the caller
// builds the entry and commits it. Waiting polls, so a caller waiting to build notices an entry
// that appeared meanwhile and takes it, and ctx ends the wait.
func acquire(ctx context.Context, cacheDir, key string) (m *meta, l *fileLock, err error) {
	lp, dir := lockPath(cacheDir, key), filepath.Join(cacheDir, key)
	for {
		_, statErr := readMeta(dir)
		how := syscall.LOCK_EX
		if statErr == nil {
			how = syscall.LOCK_SH
		}
		l, _, err := lockOnce(lp, how)
		if err != nil {
			return nil, nil, err
		}
		if l != nil {
			m, err := readMeta(dir)
			switch {
			case err == nil && how == syscall.LOCK_EX:
				if err := l.downgrade(); err != nil {
					l.release()
					return nil, nil, err
				}
				return m, l, nil
			case err == nil:
				return m, l, nil
			case how == syscall.LOCK_EX:
				return nil, l, nil
			}
			l.release() // pruned between the look and the lock
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("waiting for cache entry %s: %w", key, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// commit moves the finished entry tmp into place under the exclusive lock l, then lets readers
// in by downgrading l to a shared lock.
func commit(cacheDir, key, tmp string, l *fileLock) error {
	dir := filepath.Join(cacheDir, key)
	if err := os.RemoveAll(dir); err != nil { // an unreadable leftover
		return fmt.Errorf("replacing cache entry %s: %w", key, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("committing cache entry %s: %w", key, err)
	}
	return l.downgrade()
}

// tryLock takes an exclusive lock on path without waiting; nil when someone holds it.
func tryLock(path string) (*fileLock, error) {
	for {
		l, busy, err := lockOnce(path, syscall.LOCK_EX)
		if err != nil || l != nil || busy {
			return l, err
		}
		// Free but replaced meanwhile: try again.
	}
}

// lockOnce tries once, without waiting, to take an flock (syscall.LOCK_SH or LOCK_EX) on path,
// creating it. It returns no lock and busy when another holds it, and neither when path no
// longer names the file it locked: Prune unlinks the lock file of an entry it removes, and a lock
// on an unlinked file protects nothing.
func lockOnce(path string, how int) (l *fileLock, busy bool, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("opening lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("locking %s: %w", path, err)
	}
	if !sameFile(f, path) {
		f.Close()
		return nil, false, nil
	}
	return &fileLock{f: f}, false, nil
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// downgrade turns an exclusive lock into a shared one.
func (l *fileLock) downgrade() error {
	if err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_SH); err != nil {
		return fmt.Errorf("downgrading lock %s: %w", l.f.Name(), err)
	}
	return nil
}

func (l *fileLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}
