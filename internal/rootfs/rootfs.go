package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotRegular is returned for a device, fifo, socket or directory where a file is read.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is returned for a file over the bound its reader set.
	ErrTooLarge = errors.New("file too large")
)

// ConfigLimit bounds a configuration file (os-release, hostname, passwd ...).
const ConfigLimit = 1 << 20

// maxLinks is how many symlinks one resolution follows, as the kernel's MAXSYMLINKS.
const maxLinks = 40

// Root is a directory opened as the "/" of a VM. Its methods are safe for concurrent use.
type Root struct {
	dir       string
	fd        int // O_PATH|O_DIRECTORY descriptor of the root
	userspace bool
}

// Open opens dir as a root. The caller closes it.
func Open(dir string) (*Root, error) { return open(dir, false) }

// open opens dir as a root; userspace forces the user-space resolver (tests).
func open(dir string, userspace bool) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "opening root", Path: dir, Err: err}
	}
	return &Root{dir: dir, fd: fd, userspace: userspace || !haveOpenat2(fd)}, nil
}

// haveOpenat2 reports whether openat2 with RESOLVE_IN_ROOT works here: old kernels lack it
// (ENOSYS) and some seccomp profiles refuse it (EPERM).
func haveOpenat2(root int) bool {
	fd, err := openat2(root, ".", unix.O_PATH)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// Close releases the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Dir returns the host path the root was opened at.
func (r *Root) Dir() string { return r.dir }

// vmPath is name as the VM sees it, for messages.
func vmPath(name string) string { return path.Clean("/" + name) }

// resolveFlags: chroot semantics, and never a /proc magic link (whose target the kernel would
// follow to anywhere on the host).
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

func openat2(dirfd int, name string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveFlags}
	for range 64 {
		fd, err := unix.Openat2(dirfd, name, &how)
		if err != unix.EAGAIN && err != unix.EINTR { // EAGAIN: a rename raced the resolution
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

// located is a resolved path: fd is an O_PATH descriptor of the object; for a non-directory
// found by the user-space resolver, parent and base say where it was found, to reopen it.
type located struct {
	fd     int
	parent int // -1 when not known (openat2) or not needed (directories)
	base   string
}

func (l *located) close() {
	unix.Close(l.fd)
	if l.parent >= 0 {
		unix.Close(l.parent)
	}
}

// locate resolves name inside the root to an O_PATH descriptor; follow says whether a final
// symlink is followed.
func (r *Root) locate(name string, follow bool) (*located, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return nil, unix.EINVAL
	}
	if !r.userspace {
		flags := unix.O_PATH
		if !follow {
			flags |= unix.O_NOFOLLOW
		}
		if name == "" {
			name = "."
		}
		fd, err := openat2(r.fd, name, flags)
		if err != nil {
			return nil, err
		}
		return &located{fd: fd, parent: -1}, nil
	}
	return r.resolve(name, follow)
}

// Open opens the regular file name (a path from the root, symlinks followed inside it) for
// reading. A device, fifo, socket or directory is refused with ErrNotRegular before it is
// opened, so opening never blocks and has no side effects.
func (r *Root) Open(name string) (*os.File, error) {
	f, _, err := r.openRegular(name)
	return f, err
}

func (r *Root) openRegular(name string) (*os.File, *unix.Stat_t, error) {
	p := vmPath(name)
	l, err := r.locate(name, true)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "opening", Path: p, Err: err}
	}
	defer l.close()
	var st unix.Stat_t
	if err := unix.Fstat(l.fd, &st); err != nil {
		return nil, nil, &fs.PathError{Op: "opening", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, &fs.PathError{Op: "opening", Path: p, Err: fmt.Errorf("%w: %s", ErrNotRegular, kind(st.Mode))}
	}
	fd, err := r.reopen(l, name)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "opening", Path: p, Err: err}
	}
	var again unix.Stat_t
	if err := unix.Fstat(fd, &again); err != nil || again.Dev != st.Dev || again.Ino != st.Ino {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "opening", Path: p, Err: errors.New("file replaced while being opened")}
	}
	return os.NewFile(uintptr(fd), p), &again, nil
}

// reopen opens the located regular file for reading: O_NONBLOCK and O_NOCTTY so that, were it
// swapped for a fifo or terminal in between, the open neither blocks nor adopts it (the caller
// then sees another inode and refuses it).
func (r *Root) reopen(l *located, name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY
	var fd int
	var err error
	if l.parent >= 0 {
		fd, err = unix.Openat(l.parent, l.base, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	} else {
		fd, err = openat2(r.fd, name, flags) // resolved again, in the root: the inode is compared
	}
	if err != nil {
		return -1, err
	}
	if err := setBlocking(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func setBlocking(fd int) error {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	return err
}

// kind names a file type for messages.
func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFIFO:
		return "a fifo"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFLNK:
		return "a symlink"
	}
	return "a regular file"
}

// Stat returns the metadata of name, following symlinks inside the root.
func (r *Root) Stat(name string) (fs.FileInfo, error) { return r.stat(name, true) }

// Lstat returns the metadata of name without following a final symlink.
func (r *Root) Lstat(name string) (fs.FileInfo, error) { return r.stat(name, false) }

func (r *Root) stat(name string, follow bool) (fs.FileInfo, error) {
	p := vmPath(name)
	l, err := r.locate(name, follow)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	defer l.close()
	var st unix.Stat_t
	if err := unix.Fstat(l.fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return &fileInfo{name: path.Base(p), st: st}, nil
}

// IsFile reports whether name is a regular file (symlinks followed inside the root).
func (r *Root) IsFile(name string) bool {
	fi, err := r.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

// IsDir reports whether name is a directory (symlinks followed inside the root).
func (r *Root) IsDir(name string) bool {
	fi, err := r.Stat(name)
	return err == nil && fi.IsDir()
}

// ReadDir lists the directory name, sorted by file name. Entry types are those of the entries
// themselves (a symlink is a symlink).
func (r *Root) ReadDir(name string) ([]fs.DirEntry, error) {
	p := vmPath(name)
	l, err := r.locate(name, true)
	if err != nil {
		return nil, &fs.PathError{Op: "reading directory", Path: p, Err: err}
	}
	defer l.close()
	fd, err := unix.Openat(l.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "reading directory", Path: p, Err: err}
	}
	d := os.NewFile(uintptr(fd), p)
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, &fs.PathError{Op: "reading directory", Path: p, Err: err}
	}
	sortEntries(ents)
	return ents, nil
}

type fileInfo struct {
	name string
	st   unix.Stat_t
}

func (fi *fileInfo) Name() string { return fi.name }
func (fi *fileInfo) Size() int64  { return fi.st.Size }
func (fi *fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	return m
}
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *fileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *fileInfo) Sys() any           { return &fi.st }
