package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

// create makes the entry hdr at name (resolved), replacing what is there; a directory stays a
// directory.
func (a *applier) create(name string, hdr *tar.Header, r io.Reader) error {
	if err := a.removeExisting(name, hdr.Typeflag == tar.TypeDir); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := a.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		a.dirs = append(a.dirs, dirMeta{name: name, hdr: hdr})
		return nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if a.donor != nil && hdr.Typeflag != tar.TypeGNUSparse {
			if taken, err := a.take(name, a.rel, hdr); err != nil {
				return err
			} else if taken {
				if a.opts.taken != nil {
					*a.opts.taken++
				}
				break
			}
		}
		if err := a.writeFile(name, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := a.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
	case tar.TypeLink:
		return a.hardlink(name, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if hdr.Typeflag != tar.TypeFifo && !a.opts.privileged {
			a.opts.logf("%s: device node skipped (needs root)", name)
			return nil
		}
		if err := a.mknod(name, hdr); err != nil {
			return err
		}
	default:
		if a.opts.lenient {
			a.opts.logf("%s: skipping tar entry of type %q", name, hdr.Typeflag)
			return nil
		}
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	return a.meta(name, hdr)
}

func (a *applier) removeExisting(name string, keepDir bool) error {
	fi, err := a.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir() && keepDir:
		return nil
	case fi.IsDir():
		return a.root.RemoveAll(name)
	}
	return a.root.Remove(name)
}

func (a *applier) writeFile(name string, r io.Reader) error {
	f, err := a.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = writeSparse(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// holeBlock is the unit writeSparse leaves unwritten when it holds only zeros.
const holeBlock = 64 << 10

var zeroBlock [holeBlock]byte

// writeSparse copies r into f, seeking over every whole block of zeros instead of writing it,
// so that a file of holes (a sparse tar entry, which the tar reader expands to zeros, or a
// stream of zeros) takes no disk space: a 10 KiB tar with a 16 GiB sparse file no longer fills
// the directory it is unpacked into. The file's contents are the same.
func writeSparse(f *os.File, r io.Reader) error {
	buf := make([]byte, holeBlock)
	var size int64
	hole := false
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if n == holeBlock && string(buf) == string(zeroBlock[:]) {
				if _, serr := f.Seek(holeBlock, io.SeekCurrent); serr != nil {
					return serr
				}
				hole = true
			} else {
				if _, werr := f.Write(buf[:n]); werr != nil {
					return werr
				}
				hole = false
			}
			size += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if hole {
		return f.Truncate(size) // a file that ends in a hole
	}
	return nil
}

// hardlink links name to the file linkname names, which must be inside the root and not a
// directory.
func (a *applier) hardlink(name, linkname string) error {
	rel, err := SafeName(linkname)
	if err != nil {
		return fmt.Errorf("hard link: %w", err)
	}
	dir, base := path.Split(rel)
	parent, err := a.resolveDir(dir, false)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	src := path.Join(parent, base)
	fi, err := a.root.Lstat(src)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("hard link to directory %q", linkname)
	}
	return a.root.Link(src, name)
}

// meta restores owner, extended attributes, mode and times of name, in that order (a change
// of owner clears set-id bits and file capabilities).
func (a *applier) meta(name string, hdr *tar.Header) error {
	if a.opts.privileged {
		if err := a.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			if err := a.metaErr(name, err); err != nil {
				return err
			}
		}
	}
	if err := a.setXattrs(name, hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if err := a.root.Chmod(name, mode); err != nil {
			if err := a.metaErr(name, err); err != nil {
				return err
			}
		}
	}
	if err := a.lchtimes(name, hdr); err != nil {
		return a.metaErr(name, err)
	}
	return nil
}

// metaErr returns err, or reports it and returns nil when Apply is lenient.
func (a *applier) metaErr(name string, err error) error {
	if !a.opts.lenient {
		return err
	}
	a.opts.logf("%s: %v", name, err)
	return nil
}
