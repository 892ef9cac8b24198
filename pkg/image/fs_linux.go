package image

import (
	"archive/tar"
	"errors"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const noFollow = unix.O_NOFOLLOW

// mknod makes the device node or fifo hdr describes at target.
func mknod(target string, hdr *tar.Header) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknod(target, mode, int(dev)); err != nil {
		return &os.PathError{Op: "mknod", Path: target, Err: err}
	}
	return nil
}

// setXattrs sets the PAX "SCHILY.xattr." records of hdr on target, without following a
// symlink. Filesystems without xattrs, and attributes a symlink may not carry, are skipped.
func setXattrs(target string, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		err := unix.Lsetxattr(target, name, []byte(v), 0)
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOTSUP), hdr.Typeflag == tar.TypeSymlink && errors.Is(err, unix.EPERM):
		default:
			return &os.PathError{Op: "setxattr " + name, Path: target, Err: err}
		}
	}
	return nil
}

// lchtimes sets target's access and modification times without following a symlink.
func lchtimes(target string, atime, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: target, Err: err}
	}
	return nil
}

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
