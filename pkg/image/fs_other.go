//go:build !linux

package image

import (
	"archive/tar"
	"errors"
	"os"
	"time"
)

const noFollow = 0

var errUnsupported = errors.New("not supported on this system")

func mknod(target string, hdr *tar.Header) error { return errUnsupported }

func setXattrs(target string, hdr *tar.Header) error { return nil }

func lchtimes(target string, atime, mtime time.Time) error {
	if fi, err := os.Lstat(target); err != nil || mtime.IsZero() || fi.Mode()&os.ModeSymlink != 0 {
		return err
	}
	return os.Chtimes(target, atime, mtime)
}

func freeBytes(dir string) (int64, error) { return 0, errUnsupported }

// replaceDir renames src onto dst, moving an existing dst away first.
func replaceDir(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		old := dst + ".old"
		if err := os.Rename(dst, old); err != nil {
			return err
		}
		defer os.RemoveAll(old)
	}
	return os.Rename(src, dst)
}
