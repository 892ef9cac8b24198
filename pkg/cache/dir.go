package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const pollInterval = 50 * time.Millisecond

// Dir is a directory of keyed entries shared by concurrent processes:
//
//	DIR/KEY          a complete entry (a directory), renamed into place when built
//	DIR/KEY.lock     its lock: shared while in use, exclusive while built or removed
//	DIR/KEY.tmp-*    an entry being built (or left by a build that died)
type Dir struct {
	Path string
	// Valid, when set, checks that an entry is complete and of the current format; an invalid
	// entry is a miss and is rebuilt. Without it an entry is valid when its directory exists.
	Valid func(entry string) error
}

func (d Dir) entry(key string) string    { return filepath.Join(d.Path, key) }
func (d Dir) lockPath(key string) string { return filepath.Join(d.Path, key+".lock") }

func (d Dir) valid(key string) bool {
	fi, err := os.Stat(d.entry(key))
	if err != nil || !fi.IsDir() {
		return false
	}
	return d.Valid == nil || d.Valid(d.entry(key)) == nil
}

// Acquire waits until it holds key's entry: a hit comes with a shared lock that keeps a prune
// away until it is released; a miss comes with the exclusive lock under which the caller builds
// the entry (in NewTemp) and commits it. Waiting polls, so a caller waiting to build notices an
// entry that appeared meanwhile and takes it, and ctx ends the wait.
func (d Dir) Acquire(ctx context.Context, key string) (hit bool, l *Lock, err error) {
	if !ValidKey(key) {
		return false, nil, fmt.Errorf("cache key %q: not a plain name", key)
	}
	for {
		how := syscall.LOCK_EX
		if d.valid(key) {
			how = syscall.LOCK_SH
		}
		l, _, err := lockOnce(d.lockPath(key), how)
		if err != nil {
			return false, nil, err
		}
		if l != nil {
			ok := d.valid(key)
			switch {
			case ok && how == syscall.LOCK_EX:
				if err := l.Downgrade(); err != nil {
					l.Release()
					return false, nil, err
				}
				l.touch()
				return true, l, nil
			case ok:
				l.touch()
				return true, l, nil
			case how == syscall.LOCK_EX:
				l.touch()
				return false, l, nil
			}
			l.Release() // pruned between the look and the lock
		}
		select {
		case <-ctx.Done():
			return false, nil, fmt.Errorf("waiting for cache entry %s: %w", key, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// NewTemp makes a private directory in which key's entry is built.
func (d Dir) NewTemp(key string) (string, error) {
	tmp := d.entry(key) + ".tmp-" + randomSuffix()
	if err := os.Mkdir(tmp, PrivateMode); err != nil {
		return "", fmt.Errorf("creating cache entry %s: %w", key, err)
	}
	return tmp, nil
}

// Commit moves the finished entry tmp into place under the exclusive lock l, then lets readers
// in by downgrading l to a shared lock.
func (d Dir) Commit(key, tmp string, l *Lock) error {
	dir := d.entry(key)
	if err := os.RemoveAll(dir); err != nil { // an invalid leftover
		return fmt.Errorf("replacing cache entry %s: %w", key, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("committing cache entry %s: %w", key, err)
	}
	return l.Downgrade()
}

// Get returns key's entry, building it with fill (given a fresh private directory) when it is
// missing, and the shared lock that keeps it from a prune: release it when done with the entry.
// Concurrent Gets of one key, in one process or several, build once.
func (d Dir) Get(ctx context.Context, key string, fill func(ctx context.Context, dir string) error) (string, *Lock, error) {
	hit, l, err := d.Acquire(ctx, key)
	if err != nil {
		return "", nil, err
	}
	if hit {
		return d.entry(key), l, nil
	}
	tmp, err := d.NewTemp(key)
	if err == nil {
		if err = fill(ctx, tmp); err == nil {
			err = d.Commit(key, tmp, l)
		}
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}
	if err != nil {
		l.Release()
		return "", nil, err
	}
	return d.entry(key), l, nil
}

// remove removes key's entry unless its lock is held; ok says whether it did.
func (d Dir) remove(key string) (ok bool, err error) {
	l, err := TryLock(d.lockPath(key))
	if err != nil || l == nil {
		return false, err
	}
	defer l.Release()
	// Rename first so that readers never see half an entry.
	gone := d.entry(key) + ".tmp-prune-" + randomSuffix()
	if err := os.Rename(d.entry(key), gone); err != nil {
		return false, fmt.Errorf("removing cache entry %s: %w", key, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return true, fmt.Errorf("removing cache entry %s: %w", key, err)
	}
	_ = os.Remove(l.f.Name()) // lockers check the inode after locking, see lockOnce
	return true, nil
}

// cleanTemps removes leftovers of builds that died (KEY.tmp-*) whose lock nobody holds, and
// lock files without an entry that nobody holds.
func (d Dir) cleanTemps() {
	des, _ := os.ReadDir(d.Path)
	for _, de := range des {
		name := de.Name()
		if key, ok := strings.CutSuffix(name, ".complete"); ok && ValidKey(key) && de.Type().IsRegular() {
			_ = os.Remove(filepath.Join(d.Path, name)) // a marker of roots made before this scheme
			continue
		}
		if key, ok := strings.CutSuffix(name, ".lock"); ok && ValidKey(key) {
			if _, err := os.Lstat(d.entry(key)); os.IsNotExist(err) {
				if l, err := TryLock(d.lockPath(key)); err == nil && l != nil {
					_ = os.Remove(l.f.Name())
					l.Release()
				}
			}
			continue
		}
		key, _, ok := strings.Cut(name, ".tmp-")
		if !ok || !ValidKey(key) {
			continue
		}
		l, err := TryLock(d.lockPath(key))
		if err != nil || l == nil {
			continue
		}
		_ = os.RemoveAll(filepath.Join(d.Path, name))
		l.Release()
	}
}

// ValidKey reports whether name can be a cache key: letters, digits, '-', '_', '.' and ':',
// nothing that climbs, hides or looks like a lock or a temporary directory.
func ValidKey(name string) bool {
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

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
