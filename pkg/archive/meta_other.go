//go:build !linux

package archive

import (
	"archive/tar"
	"errors"
)

var errUnsupported = errors.New("not supported on this system")

func (a *applier) mknod(name string, hdr *tar.Header) error { return errUnsupported }

func (a *applier) setXattrs(name string, hdr *tar.Header) error { return nil }

func (a *applier) lchtimes(name string, hdr *tar.Header) error {
	if hdr.ModTime.IsZero() || hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	return a.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
}
