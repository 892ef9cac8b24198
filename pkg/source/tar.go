package source

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/vm2image/vm2image/internal/ctxio"
	"github.com/vm2image/vm2image/internal/workdir"
	"golang.org/x/sys/unix"
)

// ErrUnsafeEntry is returned for a tar entry that would land outside the extraction directory.
var ErrUnsafeEntry = errors.New("unsafe tar entry")

// OpenTar unpacks a root-filesystem archive (plain, gzip or zstd) into a private directory
// under opts.WorkDir and serves it with the agent's code. The directory (0700, holding the
// unpacked root) is removed on Close and on every error; one left by a run that was killed is
// removed by the next OpenTar in the same parent directory.
func OpenTar(ctx context.Context, file, name string, opts Options) (Source, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("opening source %s: %w", name, err)
	}
	defer f.Close()
	// A read blocked on a slow archive (a pipe, a network filesystem) ends when ctx does.
	defer context.AfterFunc(ctx, func() { f.Close() })()
	td, err := workdir.New(opts.WorkDir, "vm2image-tar-")
	if err != nil {
		return nil, fmt.Errorf("opening source %s: %w", name, err)
	}
	root := filepath.Join(td.Path(), "root")
	err = os.Mkdir(root, 0o700)
	if err == nil {
		err = Unpack(ctx, f, root, opts.Logf)
		if err != nil && ctx.Err() != nil {
			err = ctx.Err() // the archive was closed under the read
		}
		if err != nil {
			err = fmt.Errorf("unpacking %s: %w", name, err)
		}
	}
	var src Source
	if err == nil {
		src, err = OpenDir(root, name)
	}
	if err != nil {
		td.Remove()
		return nil, err
	}
	src.(*local).cleanup = td.Remove
	return src, nil
}

// Decompress detects gzip or zstd by their magic numbers and returns a reader of the plain bytes.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return pgzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// Unpack extracts a (possibly compressed) tar stream into dir. Entries with absolute names or
// ".." components, and writes through symlinks that leave dir, are refused with an error naming
// the entry. Owners, modes, times, devices, fifos, hard links and xattrs are restored where the
// process may do so; logf reports what could not be.
func Unpack(ctx context.Context, r io.Reader, dir string, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	plain, err := Decompress(r)
	if err != nil {
		return err
	}
	defer plain.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	u := unpacker{ctx: ctx, root: root, logf: logf, privileged: os.Geteuid() == 0}
	tr := tar.NewReader(plain)
	var dirs []*tar.Header
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		name, err := SafeName(h.Name)
		if err != nil {
			return err
		}
		if name == "." {
			dirs = append(dirs, h)
			continue
		}
		if err := u.entry(name, h, tr); err != nil {
			return fmt.Errorf("extracting %q: %w", h.Name, err)
		}
		if h.Typeflag == tar.TypeDir {
			dirs = append(dirs, h)
		}
	}
	// Directory times last, deepest first, so entries written inside do not disturb them.
	for i := len(dirs) - 1; i >= 0; i-- {
		name, _ := SafeName(dirs[i].Name)
		u.meta(name, dirs[i])
	}
	return nil
}

// SafeName cleans a tar entry name to a relative slash path, refusing absolute names and
// names that climb out with "..".
func SafeName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w %q: NUL byte in name", ErrUnsafeEntry, name)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w %q: absolute path", ErrUnsafeEntry, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w %q: path climbs out with \"..\"", ErrUnsafeEntry, name)
		}
	}
	c := path.Clean(name)
	if c == "" {
		c = "."
	}
	return c, nil
}

type unpacker struct {
	ctx        context.Context
	root       *os.Root
	logf       func(string, ...any)
	privileged bool
}

func (u *unpacker) entry(name string, h *tar.Header, r io.Reader) error {
	if dir := path.Dir(name); dir != "." {
		if err := u.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if h.Typeflag != tar.TypeDir {
		if err := u.root.RemoveAll(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	var err error
	switch h.Typeflag {
	case tar.TypeDir:
		if err = u.root.Mkdir(name, 0o700); errors.Is(err, fs.ErrExist) {
			err = nil
		}
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		err = u.file(name, r)
	case tar.TypeSymlink:
		err = u.root.Symlink(h.Linkname, name)
	case tar.TypeLink:
		target, terr := SafeName(h.Linkname)
		if terr != nil {
			return terr
		}
		return u.root.Link(target, name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = u.mknod(name, h)
	default:
		u.logf("%s: skipping tar entry of type %q", name, h.Typeflag)
		return nil
	}
	if err != nil {
		return err
	}
	if h.Typeflag != tar.TypeDir {
		u.meta(name, h)
	}
	return nil
}

func (u *unpacker) file(name string, r io.Reader) error {
	f, err := u.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = ctxio.Copy(u.ctx, f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (u *unpacker) mknod(name string, h *tar.Header) error {
	mode := uint32(unix.S_IFIFO)
	switch h.Typeflag {
	case tar.TypeChar:
		mode = unix.S_IFCHR
	case tar.TypeBlock:
		mode = unix.S_IFBLK
	}
	if mode != unix.S_IFIFO && !u.privileged {
		u.logf("%s: device node skipped (needs root)", name)
		return nil
	}
	d, err := u.root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Mknodat(int(d.Fd()), path.Base(name), mode|0o600, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
}

// meta restores owner, mode, xattrs and times; failures are reported, not fatal.
func (u *unpacker) meta(name string, h *tar.Header) {
	if u.privileged {
		if err := u.root.Lchown(name, h.Uid, h.Gid); err != nil {
			u.logf("%s: %v", name, err)
		}
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := u.root.Chmod(name, fs.FileMode(h.Mode&0o777)|modeBits(h.Mode)); err != nil {
			u.logf("%s: %v", name, err)
		}
	}
	u.xattrs(name, h)
	if h.Typeflag != tar.TypeSymlink {
		if err := u.root.Chtimes(name, h.ModTime, h.ModTime); err != nil {
			u.logf("%s: %v", name, err)
		}
	}
}

func modeBits(m int64) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

func (u *unpacker) xattrs(name string, h *tar.Header) {
	var d *os.File
	for k, v := range h.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if d == nil {
			var err error
			if d, err = u.root.Open(path.Dir(name)); err != nil {
				u.logf("%s: %v", name, err)
				return
			}
			defer d.Close()
		}
		p := filepath.Join(fmt.Sprintf("/proc/self/fd/%d", d.Fd()), path.Base(name))
		if err := unix.Lsetxattr(p, attr, []byte(v), 0); err != nil {
			u.logf("%s: setting xattr %s: %v", name, attr, err)
		}
	}
}
