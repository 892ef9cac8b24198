package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// inParent calls fn with a directory opened through the root and the last component of name,
// so the call cannot be sent outside the root by a symlink.
func (a *applier) inParent(name string, fn func(d *os.File, base string) error) error {
	d, err := a.root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(d, path.Base(name))
}

// mknod makes the device node or fifo hdr describes at name.
func (a *applier) mknod(name string, hdr *tar.Header) error {
	mode := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode = unix.S_IFCHR
	case tar.TypeBlock:
		mode = unix.S_IFBLK
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	return a.inParent(name, func(d *os.File, base string) error {
		if err := unix.Mknodat(int(d.Fd()), base, mode|0o600, dev); err != nil {
			return &os.PathError{Op: "mknod", Path: name, Err: err}
		}
		return nil
	})
}

// setXattrs sets the PAX xattr records of hdr on name, without following a symlink.
// Filesystems without xattrs, and attributes a symlink may not carry, are skipped.
func (a *applier) setXattrs(name string, hdr *tar.Header) error {
	var attrs []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, PAXXattrPrefix) {
			attrs = append(attrs, k)
		}
	}
	if len(attrs) == 0 {
		return nil
	}
	return a.inParent(name, func(d *os.File, base string) error {
		p := fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), base)
		for _, k := range attrs {
			attr := strings.TrimPrefix(k, PAXXattrPrefix)
			err := unix.Lsetxattr(p, attr, []byte(hdr.PAXRecords[k]), 0)
			switch {
			case err == nil:
			case errors.Is(err, unix.ENOTSUP), hdr.Typeflag == tar.TypeSymlink && errors.Is(err, unix.EPERM):
				a.opts.logf("%s: xattr %s skipped: %v", name, attr, err)
			default:
				if err := a.metaErr(name, &os.PathError{Op: "setxattr " + attr, Path: name, Err: err}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// lchtimes sets name's access and modification times without following a symlink.
func (a *applier) lchtimes(name string, hdr *tar.Header) error {
	mtime, atime := hdr.ModTime, hdr.AccessTime
	if mtime.IsZero() {
		return nil
	}
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	return a.inParent(name, func(d *os.File, base string) error {
		if err := unix.UtimesNanoAt(int(d.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "utimes", Path: name, Err: err}
		}
		return nil
	})
}
