package workdir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A directory is made under a staging name, locked with flock(2) and only then renamed to its
// final name, so every final-named directory is either held by a live process or left by one
// that died: the next New with the same prefix removes the latter.
const (
	stagingSuffix = ".new-"
	// stagingStale is how old a staging directory must be before it is taken for a leftover
	// (it exists only between mkdir and rename, microseconds in a live run).
	stagingStale = time.Hour
)

// Dir is a private (0700) work directory, locked for as long as it is in use.
type Dir struct {
	path string
	lock *os.File
}

// New sweeps the directories named prefix+"*" that dead runs left in parent (default: the
// system temp dir), then makes a 0700 directory prefix+RANDOM there and holds its lock until
// Remove. prefix must end in "-" (as "vm2image-tar-").
func New(parent, prefix string) (*Dir, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	stem := strings.TrimSuffix(prefix, "-")
	sweep(parent, prefix, stem+stagingSuffix)
	staging, err := os.MkdirTemp(parent, stem+stagingSuffix)
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(staging)
	if err != nil {
		os.Remove(staging)
		return nil, err
	}
	final := filepath.Join(parent, prefix+strings.TrimPrefix(filepath.Base(staging), stem+stagingSuffix))
	if err := os.Rename(staging, final); err != nil {
		lock.Close()
		os.Remove(staging)
		return nil, err
	}
	return &Dir{path: final, lock: lock}, nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// lockDir takes the exclusive lock of dir without waiting; it fails with EWOULDBLOCK while a
// live process holds it.
func lockDir(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "opening", Path: dir, Err: err}
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "locking", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// Remove deletes the directory, then releases its lock.
func (d *Dir) Remove() error {
	err := os.RemoveAll(d.path)
	d.lock.Close()
	if err != nil {
		return fmt.Errorf("removing %s: %w", d.path, err)
	}
	return nil
}

// sweep removes the directories named prefix+"*" in parent whose process died (no lock held),
// and staging directories older than stagingStale. Only directories of this user are touched.
func sweep(parent, prefix, stagingPrefix string) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		staging := strings.HasPrefix(name, stagingPrefix)
		if !e.IsDir() || !staging && !strings.HasPrefix(name, prefix) {
			continue
		}
		p := filepath.Join(parent, name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() || !ownedByUs(fi) || staging && time.Since(fi.ModTime()) < stagingStale {
			continue
		}
		lock, err := lockDir(p)
		if err != nil {
			continue // held by a live run
		}
		os.RemoveAll(p)
		lock.Close()
	}
}

func ownedByUs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
