package fswalk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"golang.org/x/sys/unix"
)

// copyBufSize is the size of the buffers that file contents are read through.
const copyBufSize = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// zeros pads files that shrank while being read.
var zeros [32 << 10]byte

// emptyDigest is the sha256 of no bytes.
const emptyDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// readXattrs reads the extended attributes of name in dirfd into w.e when opts ask for them.
// A read error is reported for p; the entry then has no xattrs.
func (w *walker) readXattrs(dirfd int, name, p string) error {
	if !w.opts.Xattrs {
		return nil
	}
	m, err := w.xattrs(w.xattrPath(dirfd, name, p))
	if err != nil {
		return w.report(p, errPath("reading xattrs of", p, err))
	}
	w.e.Xattrs = m
	return nil
}

// xattrs returns the extended attributes of path (not followed if a symlink); nil if none or if
// the filesystem has no xattrs.
func (w *walker) xattrs(path string) (map[string][]byte, error) {
	list, err := w.listXattrs(path)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	var m map[string][]byte
	for len(list) > 0 {
		name, rest, _ := bytes.Cut(list, []byte{0})
		list = rest
		if len(name) == 0 {
			continue
		}
		v, err := w.getXattr(path, string(name))
		if err == unix.ENODATA {
			continue // removed since it was listed
		}
		if err != nil {
			return m, err
		}
		if m == nil {
			m = make(map[string][]byte)
		}
		m[string(name)] = v
	}
	return m, nil
}

func (w *walker) listXattrs(path string) ([]byte, error) {
	for {
		n, err := unix.Llistxattr(path, w.xlist)
		switch err {
		case nil:
			return w.xlist[:n], nil
		case unix.ENOTSUP:
			return nil, nil
		case unix.ERANGE:
			size, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, err
			}
			w.xlist = make([]byte, size+1024)
		case unix.EINTR:
		default:
			return nil, err
		}
	}
}

func (w *walker) getXattr(path, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(path, name, w.xval)
		switch err {
		case nil:
			v := make([]byte, n)
			copy(v, w.xval)
			return v, nil
		case unix.ERANGE:
			size, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, err
			}
			w.xval = make([]byte, size+1024)
		case unix.EINTR:
		default:
			return nil, err
		}
	}
}

// openFile opens name in dirfd for reading and checks it is still the regular file e describes;
// w.fst then holds its metadata.
func (w *walker) openFile(dirfd int, name string, e *fsmeta.Entry) (int, error) {
	if w.hooks.beforeOpen != nil {
		w.hooks.beforeOpen(e.Path)
	}
	// O_NONBLOCK and O_NOCTTY: a file swapped for a FIFO or a terminal must not block the open
	// or become our terminal.
	fd, err := w.openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC)
	if err != nil {
		return -1, errPath("opening", e.Path, err)
	}
	if err := unix.Fstat(fd, &w.fst); err != nil {
		unix.Close(fd)
		return -1, errPath("reading metadata of", e.Path, err)
	}
	if w.fst.Mode&unix.S_IFMT != unix.S_IFREG || uint64(w.fst.Dev) != e.Dev || uint64(w.fst.Ino) != e.Ino {
		unix.Close(fd)
		return -1, errPath("opening", e.Path, fmt.Errorf("%w: replaced by another file", ErrChanged))
	}
	return fd, nil
}

// digest sets e.Digest to the sha256 of the regular file name in dirfd, with e's size and times
// refreshed from the open file. perPath is an error to report for e; fatal ends the walk.
func (w *walker) digest(e *fsmeta.Entry, dirfd int, name string) (perPath, fatal error) {
	if e.Size == 0 {
		e.Digest = emptyDigest
		return nil, nil
	}
	key := devIno{e.Dev, e.Ino}
	if d, ok := w.linkDigests[key]; ok {
		e.Digest = d // another name of an inode already read
		return nil, nil
	}
	fd, err := w.openFile(dirfd, name, e)
	if err != nil {
		return err, nil
	}
	defer unix.Close(fd)
	refreshEntry(e, &w.fst)
	d, perPath, fatal := hashFD(w.ctx, fd, &w.fst, w.copyBuf())
	if fatal != nil || perPath != nil {
		return errPathOrNil("reading", e.Path, perPath), fatal
	}
	e.Digest = d
	if e.Nlink > 1 {
		if w.linkDigests == nil {
			w.linkDigests = make(map[devIno]string)
		}
		w.linkDigests[key] = d
	}
	return nil, nil
}

func errPathOrNil(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return errPath(op, p, err)
}

// hashFD returns the digest of the open regular file fd whose metadata is st.
func hashFD(ctx context.Context, fd int, st *unix.Stat_t, buf []byte) (digest string, perPath, fatal error) {
	h := sha256.New()
	perPath, fatal = copyFD(ctx, h, fd, st.Size, buf)
	if fatal != nil {
		return "", nil, fatal
	}
	if perPath == nil {
		perPath = checkUnchanged(fd, st)
	}
	if perPath != nil {
		return "", perPath, nil
	}
	return digestString(h), nil, nil
}

func digestString(h hash.Hash) string {
	var sum [sha256.Size]byte
	return "sha256:" + hex.EncodeToString(h.Sum(sum[:0]))
}

// copyFD copies exactly size bytes of fd to dst, the way a tar entry needs them: a file that got
// shorter is padded with zeros, one that got longer is cut. changed reports that (wrapping
// ErrChanged) or a read error; fatal is an error of dst or of ctx.
func copyFD(ctx context.Context, dst io.Writer, fd int, size int64, buf []byte) (changed, fatal error) {
	remaining := size
	for remaining > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		want := int64(len(buf))
		if want > remaining+1 {
			want = remaining + 1 // one byte more tells a file that grew
		}
		n, err := unix.Read(fd, buf[:want])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			changed = fmt.Errorf("reading at offset %d: %w", size-remaining, err)
			break
		}
		if n == 0 {
			changed = fmt.Errorf("%w: shrank from %d to %d bytes", ErrChanged, size, size-remaining)
			break
		}
		if int64(n) > remaining {
			n = int(remaining)
			changed = fmt.Errorf("%w: grew beyond %d bytes", ErrChanged, size)
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return changed, fmt.Errorf("writing contents: %w", err)
		}
		remaining -= int64(n)
	}
	for remaining > 0 {
		n := min(remaining, int64(len(zeros)))
		if _, err := dst.Write(zeros[:n]); err != nil {
			return changed, fmt.Errorf("writing padding: %w", err)
		}
		remaining -= n
	}
	return changed, nil
}

// checkUnchanged reports, wrapping ErrChanged, a file whose size or modification time is no
// longer what st recorded when it was opened.
func checkUnchanged(fd int, st *unix.Stat_t) error {
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return fmt.Errorf("reading metadata: %w", err)
	}
	if now.Size != st.Size || now.Mtim != st.Mtim {
		return fmt.Errorf("%w: modified while being read", ErrChanged)
	}
	return nil
}

// pseudoMagics are the statfs magic numbers of the filesystems IsPseudoFS names, for mounts
// that mountinfo does not show.
var pseudoMagics = map[uint32]bool{
	unix.PROC_SUPER_MAGIC: true, unix.SYSFS_MAGIC: true, unix.TMPFS_MAGIC: true,
	unix.RAMFS_MAGIC: true, unix.DEVPTS_SUPER_MAGIC: true, unix.CGROUP_SUPER_MAGIC: true,
	unix.CGROUP2_SUPER_MAGIC: true, 0x19800202 /* mqueue */ : true, unix.DEBUGFS_MAGIC: true,
	unix.TRACEFS_MAGIC: true, unix.SECURITYFS_MAGIC: true, unix.PSTOREFS_MAGIC: true,
	unix.BPF_FS_MAGIC: true, 0x62656570 /* configfs */ : true, 0x65735543 /* fusectl */ : true,
	unix.HUGETLBFS_MAGIC: true, unix.AUTOFS_SUPER_MAGIC: true, unix.BINFMTFS_MAGIC: true,
	0x67596969 /* rpc_pipefs */ : true, unix.EFIVARFS_MAGIC: true, unix.SELINUX_MAGIC: true,
	unix.NSFS_MAGIC: true, unix.FUSE_SUPER_MAGIC: true, unix.NFS_SUPER_MAGIC: true,
	unix.SMB_SUPER_MAGIC: true, unix.SMB2_SUPER_MAGIC: true, unix.CIFS_SUPER_MAGIC: true,
	unix.V9FS_MAGIC: true, unix.CEPH_SUPER_MAGIC: true,
}

// isPseudoMagic reports whether the open directory fd is on a pseudo or network filesystem.
func isPseudoMagic(fd int) bool {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return false
	}
	return pseudoMagics[uint32(sfs.Type)]
}
