//go:build !linux

package image

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("not supported on this system")

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
