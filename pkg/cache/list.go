package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Entry is one entry of a cache kind.
type Entry struct {
	Kind     Kind      `json:"kind"`
	Key      string    `json:"key"`
	Path     string    `json:"path"`
	Size     int64     `json:"size"`      // bytes of its regular files, each inode counted once
	LastUsed time.Time `json:"last_used"` // when it was made or last taken from the cache
	InUse    bool      `json:"in_use"`    // held by a running conversion: never pruned
	lock     string    // a store entry's store lock (its partition's, for package archives)
}

// IsPackageFile says whether name is a package file the package archive store keeps: a .deb,
// an .rpm, a pacman .pkg.tar.zst|xz|gz (not hidden: temporary files start with a dot).
func IsPackageFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	for _, s := range []string{".deb", ".rpm", ".pkg.tar.zst", ".pkg.tar.xz", ".pkg.tar.gz"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// storeFiles are the subdirectories of a store kind whose files are its entries.
var storeFiles = map[Kind][]string{
	Images:      {"blobs/sha256", "downloads", "digests"},
	AptArchives: {"."},
}

// List returns the entries of every kind, by kind, least recently used first. Entries being
// built are left out; a missing root or kind is empty.
func (r Root) List() ([]Entry, error) {
	var out []Entry
	for _, k := range Kinds {
		es, err := r.list(k)
		if err != nil {
			return out, err
		}
		out = append(out, es...)
	}
	return out, nil
}

func (r Root) list(k Kind) ([]Entry, error) {
	var es []Entry
	var err error
	if subs, ok := storeFiles[k]; ok {
		es, err = r.listStore(k, subs)
	} else {
		es, err = r.listKeyed(k)
	}
	if err != nil {
		return nil, fmt.Errorf("listing the %s cache: %w", k, err)
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].LastUsed.Before(es[j].LastUsed) })
	return es, nil
}

func (r Root) listKeyed(k Kind) ([]Entry, error) {
	d := Dir{Path: r.Path(k)}
	des, err := os.ReadDir(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, de := range des {
		if !de.IsDir() || !ValidKey(de.Name()) {
			continue
		}
		key := de.Name()
		e := Entry{Kind: k, Key: key, Path: d.entry(key), Size: treeSize(d.entry(key)), InUse: inUse(d.lockPath(key))}
		e.LastUsed = modTime(d.lockPath(key), d.entry(key))
		out = append(out, e)
	}
	return out, nil
}

func (r Root) listStore(k Kind, subs []string) ([]Entry, error) {
	dirs := make([]string, 0, len(subs))
	for _, sub := range subs {
		dirs = append(dirs, filepath.Join(r.Path(k), sub))
	}
	if k == AptArchives {
		dirs = r.archiveDirs()
	}
	var out []Entry
	for _, dir := range dirs {
		lock := filepath.Join(r.Path(k), StoreLock)
		if k == AptArchives {
			lock = filepath.Join(dir, StoreLock)
		}
		busy := inUse(lock)
		des, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, de := range des {
			name := de.Name()
			if !de.Type().IsRegular() || strings.HasPrefix(name, ".") || (k == AptArchives && !IsPackageFile(name)) {
				continue
			}
			fi, err := de.Info()
			if err != nil {
				continue
			}
			key := name
			if dir != r.Path(k) {
				key = filepath.Base(dir) + "/" + name
			}
			out = append(out, Entry{Kind: k, Key: key, Path: filepath.Join(dir, name), Size: fi.Size(),
				LastUsed: lastUse(fi), InUse: busy, lock: lock})
		}
	}
	return out, nil
}

// archiveDirs are the package archive store's directories: its top (where archives were once
// shared) and its partitions (one per base and repositories, each with its own store lock).
func (r Root) archiveDirs() []string {
	top := r.Path(AptArchives)
	des, err := os.ReadDir(top)
	if err != nil {
		return nil
	}
	dirs := []string{top}
	for _, de := range des {
		if de.IsDir() && ValidKey(de.Name()) {
			dirs = append(dirs, filepath.Join(top, de.Name()))
		}
	}
	return dirs
}

// lastUse is the later of a file's modification and access times (atime where the mount keeps
// it: relatime updates it at least daily).
func lastUse(fi fs.FileInfo) time.Time {
	t := fi.ModTime()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if a := time.Unix(st.Atim.Sec, st.Atim.Nsec); a.After(t) {
			t = a
		}
	}
	return t
}

// modTime is the modification time of the first path that exists.
func modTime(paths ...string) time.Time {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			return fi.ModTime()
		}
	}
	return time.Time{}
}

// treeSize adds the sizes of the regular files under dir, each inode once.
func treeSize(dir string) int64 {
	var n int64
	seen := map[[2]uint64]bool{}
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			id := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[id] {
				return nil
			}
			seen[id] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}
