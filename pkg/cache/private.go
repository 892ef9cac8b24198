package cache

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// PrivateMode is the mode of every cache and work directory vm2image makes: unpacked roots
// hold set-id files and device nodes that no other local user may reach.
const PrivateMode fs.FileMode = 0o700

// MkdirPrivate makes dir and the parents it lacks with PrivateMode. When dir exists with a
// looser mode (group or others may enter or read it), it is tightened to PrivateMode and notef,
// when set, hears about it. Parents that exist are left as they are: they are not vm2image's.
func MkdirPrivate(dir string, notef func(format string, args ...any)) error {
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir) // a --cache-dir given as a symlink to a directory is the directory
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("creating cache directory %s: %w", dir, fs.ErrExist)
	case err == nil:
		return tighten(dir, fi, notef)
	case !os.IsNotExist(err):
		return fmt.Errorf("creating cache directory %s: %w", dir, err)
	}
	if parent := filepath.Dir(dir); parent != dir {
		if _, err := os.Lstat(parent); os.IsNotExist(err) {
			if err := MkdirPrivate(parent, nil); err != nil {
				return err
			}
		}
	}
	if err := os.Mkdir(dir, PrivateMode); err != nil && !os.IsExist(err) {
		return fmt.Errorf("creating cache directory %s: %w", dir, err)
	}
	return os.Chmod(dir, PrivateMode) // the umask may have taken bits we want; never more
}

func tighten(dir string, fi fs.FileInfo, notef func(string, ...any)) error {
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, PrivateMode); err != nil {
		return fmt.Errorf("making cache directory %s private: %w", dir, err)
	}
	if notef != nil {
		notef("cache directory %s had mode %04o: now %04o (it may hold set-id files from images)", dir, fi.Mode().Perm(), PrivateMode)
	}
	return nil
}
