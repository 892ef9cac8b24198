package pkgmgr

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/vm2image/vm2image/internal/rootfs"
)

// maxRPMDB bounds an rpmdb file (and its SQLite WAL): the Berkeley DB Packages file of a large
// RHEL system holds a few hundred MiB.
const maxRPMDB = 1 << 30

// hostPath gives the rpm backends, which open their database by name, a host path for the
// rpmdb file name inside r that cannot lead anywhere else:
//
//   - Berkeley DB and NDB files are opened inside the root, and the backend is given
//     /proc/self/fd/N of that descriptor: the very inode found in the root, no copy. Where
//     /proc is not mounted, the file is copied as below.
//   - SQLite files are copied, with a non-empty write-ahead log, into a private (0700)
//     temporary directory: SQLite opens the log (and its index) by name next to the
//     database, so it must see a directory of ours, not the VM's.
//
// done closes and removes what hostPath made; it is never nil.
func hostPath(r *rootfs.Root, name string) (file string, done func(), err error) {
	f, err := r.OpenBounded(name, maxRPMDB)
	if err != nil {
		return "", func() {}, err
	}
	magic := make([]byte, 16)
	n, err := io.ReadFull(f.OS(), magic)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
		f.Close()
		return "", func() {}, err
	}
	if !bytes.Equal(magic[:n], []byte("SQLite format 3\x00")) {
		if p, ok := procFDPath(f.OS()); ok {
			return p, func() { f.Close() }, nil
		}
	}
	if _, err := f.OS().Seek(0, io.SeekStart); err != nil {
		f.Close()
		return "", func() {}, err
	}
	dir, err := os.MkdirTemp("", "vm2image-rpmdb-")
	if err != nil {
		f.Close()
		return "", func() {}, err
	}
	done = func() { os.RemoveAll(dir) }
	dst := filepath.Join(dir, path.Base(name))
	err = copyTo(dst, f)
	f.Close()
	if err == nil {
		err = copyWAL(r, name, dst)
	}
	if err != nil {
		done()
		return "", func() {}, err
	}
	return dst, done, nil
}

// procFDPath returns /proc/self/fd/N for f when that names f's own inode.
func procFDPath(f *os.File) (string, bool) {
	p := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	a, err1 := os.Stat(p)
	b, err2 := f.Stat()
	return p, err1 == nil && err2 == nil && os.SameFile(a, b)
}

// copyWAL copies name's SQLite write-ahead log next to dst when it holds something.
func copyWAL(r *rootfs.Root, name, dst string) error {
	w, err := r.OpenBounded(name+"-wal", maxRPMDB)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if w.Size() == 0 {
		return nil
	}
	return copyTo(dst+"-wal", w)
}

func copyTo(dst string, src io.Reader) error {
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, src)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying rpmdb: %w", err)
	}
	return nil
}
