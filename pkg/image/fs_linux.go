package image

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// freeBytes returns the bytes available to the caller on dir's filesystem.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// replaceDir renames the directory src onto dst. An existing dst is exchanged with src in one
// atomic step and then removed, so dst is at every moment either the old or the new tree.
func replaceDir(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		return os.Rename(src, dst)
	}
	if err != nil {
		return &os.LinkError{Op: "rename-exchange", Old: src, New: dst, Err: err}
	}
	return os.RemoveAll(src) // the old tree, now at src
}
