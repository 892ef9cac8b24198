package fswalk

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"golang.org/x/sys/unix"
)

// Walk calls fn for every entry of the tree at root, depth-first in a deterministic order: the
// root itself first as ".", a directory before its contents, and the children of a directory in
// the byte order of their names. Entries have Dev, Ino and Nlink filled, so hard links can be
// grouped; Xattrs and Digest when opts ask for them.
//
// Walk never follows a symlink (but root itself may be one) and never leaves the root: every
// directory is opened relative to its parent's descriptor with O_NOFOLLOW, so a directory swapped
// for a symlink during the walk is reported, not followed. It holds one descriptor per level of
// depth.
//
// fn must not keep e after it returns: the Entry is reused. A copy (*e) may be kept. An error
// from fn ends the walk and is returned as it is; per-path errors go to opts.OnError.
func Walk(ctx context.Context, root string, opts Options, fn func(e *fsmeta.Entry) error) error {
	w, err := newWalker(ctx, root, opts)
	if err != nil {
		return err
	}
	defer w.close()
	w.visit = func(e *fsmeta.Entry, dirfd int, name string) error {
		if opts.Digest && e.Type == fsmeta.TypeRegular {
			perPath, fatal := w.digest(e, dirfd, name)
			if fatal != nil {
				return fatal
			}
			if perPath != nil {
				if err := w.report(e.Path, perPath); err != nil {
					return err
				}
			}
		}
		return fn(e)
	}
	return w.walkRoot()
}

// visitFunc receives each entry with the directory descriptor and name it was found by.
type visitFunc func(e *fsmeta.Entry, dirfd int, name string) error

// walker holds the state of one walk; it is not safe for concurrent use.
type walker struct {
	ctx      context.Context
	opts     Options
	hooks    testHooks
	ex       excluder
	mounts   mountTable
	rootAbs  string
	rootfd   int
	rootDev  uint64
	procFD   bool // /proc/self/fd/N/name reaches a name in an open directory
	noatime  int  // O_NOATIME until the kernel refuses it
	errors   int64
	visit    visitFunc
	noDeeper bool // named, non-recursive directories: list them only

	e       fsmeta.Entry
	st, fst unix.Stat_t // st: the entry being listed; fst: a file opened for its contents
	names   []string    // components of the current path, for exclude matching
	levels  [][]string  // name lists reused per depth
	dirBuf  []byte
	linkBuf []byte
	xlist   []byte
	xval    []byte
	buf     *[]byte // pooled copy buffer, taken on first use

	linkDigests map[devIno]string // digests of inodes with more than one link
}

func newWalker(ctx context.Context, root string, opts Options) (*walker, error) {
	ex, err := compileExcludes(opts.Excludes)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("resolving root %q: %w", root, err)
	}
	fd, err := unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errPath("opening root", abs, err)
	}
	w := &walker{ctx: ctx, opts: opts, ex: ex, rootAbs: abs, rootfd: fd, noatime: unix.O_NOATIME}
	if opts.hooks != nil {
		w.hooks = *opts.hooks
	}
	if err := unix.Fstat(fd, &w.st); err != nil {
		w.close()
		return nil, errPath("reading metadata of root", abs, err)
	}
	w.rootDev = uint64(w.st.Dev)
	if opts.Pseudo == PseudoSkip {
		mi := opts.MountinfoPath
		if mi == "" {
			mi = DefaultMountinfo
		}
		w.mounts = readMountTable(mi, abs)
	}
	var pst unix.Stat_t
	if unix.Stat("/proc/self/fd/"+strconv.Itoa(fd), &pst) == nil && pst.Dev == w.st.Dev && pst.Ino == w.st.Ino {
		w.procFD = true
	}
	w.dirBuf = make([]byte, 64<<10)
	if opts.Xattrs {
		w.xlist, w.xval = make([]byte, 4096), make([]byte, 4096)
	}
	return w, nil
}

func (w *walker) close() {
	if w.rootfd >= 0 {
		unix.Close(w.rootfd)
		w.rootfd = -1
	}
	if w.buf != nil {
		bufPool.Put(w.buf)
		w.buf = nil
	}
}

// copyBuf returns the walk's pooled 1 MiB copy buffer.
func (w *walker) copyBuf() []byte {
	if w.buf == nil {
		w.buf = bufPool.Get().(*[]byte)
	}
	return *w.buf
}

// report counts a per-path error and asks OnError whether to go on.
func (w *walker) report(p string, err error) error {
	w.errors++
	if w.opts.OnError == nil {
		return nil
	}
	return w.opts.OnError(p, err)
}

func (w *walker) checkCtx() error {
	select {
	case <-w.ctx.Done():
		return w.ctx.Err()
	default:
		return nil
	}
}

// walkRoot visits the root as "." and then everything under it.
func (w *walker) walkRoot() error {
	if err := w.checkCtx(); err != nil {
		return err
	}
	if err := unix.Fstat(w.rootfd, &w.st); err != nil {
		return errPath("reading metadata of root", w.rootAbs, err)
	}
	fillEntry(&w.e, &w.st, ".")
	if err := w.readXattrs(w.rootfd, ".", "."); err != nil {
		return err
	}
	if err := w.visit(&w.e, w.rootfd, "."); err != nil {
		return err
	}
	return w.walkDir(w.rootfd, "", w.rootDev)
}

// walkDir visits the contents of the open directory dirfd, whose path is rel ("" for the root).
func (w *walker) walkDir(dirfd int, rel string, dev uint64) error {
	depth := len(w.names)
	names, err := w.readNames(dirfd, depth)
	if err != nil {
		p := relOrDot(rel)
		if err := w.report(p, errPath("reading directory", p, err)); err != nil {
			return err
		}
	}
	for _, name := range names {
		if err := w.checkCtx(); err != nil {
			return err
		}
		w.names = append(w.names, name)
		err := w.child(dirfd, joinRel(rel, name), name, dev)
		w.names = w.names[:depth]
		if err != nil {
			return err
		}
	}
	return nil
}

// readNames reads every name in dirfd, sorted by bytes, into the name list of that depth.
func (w *walker) readNames(dirfd, depth int) ([]string, error) {
	for len(w.levels) <= depth {
		w.levels = append(w.levels, nil)
	}
	names := w.levels[depth][:0]
	var err error
	for {
		var n int
		n, err = unix.Getdents(dirfd, w.dirBuf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(w.dirBuf[:n], -1, names)
	}
	slices.Sort(names)
	w.levels[depth] = names
	return names, err
}

// child lists one name of directory dirfd and walks into it if it is a directory.
func (w *walker) child(dirfd int, p, name string, parentDev uint64) error {
	if w.ex.match(w.names) {
		return nil
	}
	if w.hooks.beforeStat != nil {
		w.hooks.beforeStat(p)
	}
	if err := w.statAt(dirfd, name, p); err != nil {
		return w.report(p, err)
	}
	if err := w.readXattrs(dirfd, name, p); err != nil {
		return err
	}
	isDir, dev, ino := w.e.Type == fsmeta.TypeDir, w.e.Dev, w.e.Ino
	if isDir && w.skippedMount(p) {
		mountPointMeta(&w.e)
	}
	if err := w.visit(&w.e, dirfd, name); err != nil {
		return err
	}
	if !isDir || w.noDeeper {
		return nil
	}
	return w.descend(dirfd, name, p, parentDev, dev, ino)
}

// descend opens the directory name of dirfd, checks it is the one that was listed, and walks it
// unless it is a mount point whose contents are skipped.
func (w *walker) descend(dirfd int, name, p string, parentDev, dev, ino uint64) error {
	known, pseudo := w.mountKind(p)
	if pseudo {
		return nil
	}
	if w.hooks.beforeOpenDir != nil {
		w.hooks.beforeOpenDir(p)
	}
	fd, err := w.openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		return w.report(p, errPath("opening directory", p, err))
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &w.st); err != nil {
		return w.report(p, errPath("reading metadata of", p, err))
	}
	if uint64(w.st.Dev) != dev || uint64(w.st.Ino) != ino {
		return w.report(p, errPath("opening directory", p, fmt.Errorf("%w: replaced by another directory", ErrChanged)))
	}
	if !known && dev != parentDev && w.opts.Pseudo == PseudoSkip && isPseudoMagic(fd) {
		return nil
	}
	return w.walkDir(fd, p, dev)
}

// treatAsMounts are the directories under the root that TreatAsMounts does not walk into.
var treatAsMounts = map[string]bool{"proc": true, "sys": true, "dev": true, "run": true}

// mountKind tells whether the mountinfo knows a mount at p, and whether its contents (or those of
// a directory TreatAsMounts names) are skipped.
func (w *walker) mountKind(p string) (known, skip bool) {
	if w.opts.TreatAsMounts && len(w.names) == 1 && treatAsMounts[p] {
		return true, true
	}
	if w.opts.Pseudo != PseudoSkip {
		return true, false
	}
	fstype, ok := w.mounts[p]
	return ok, ok && IsPseudoFS(fstype)
}

// skippedMount reports whether p is a mount point of a pseudo or network filesystem that the
// mountinfo names (not a directory TreatAsMounts names: that one is the root's own).
func (w *walker) skippedMount(p string) bool {
	if w.opts.Pseudo != PseudoSkip || w.opts.TreatAsMounts && len(w.names) == 1 && treatAsMounts[p] {
		return false
	}
	fstype, ok := w.mounts[p]
	return ok && IsPseudoFS(fstype)
}

// mountPointMeta gives the entry of a skipped mount point the metadata of the directory an
// image has there, not the mounted filesystem's root (proc's 0555, a tmpfs's owner): root's,
// mode 0755, or 01777 where the mounted root is sticky (a tmpfs /tmp); no xattrs.
func mountPointMeta(e *fsmeta.Entry) {
	mode := uint32(0o755)
	if e.Mode&fsmeta.ModeSticky != 0 {
		mode = 0o1777
	}
	e.Mode, e.UID, e.GID, e.Xattrs = mode, 0, 0, nil
}

// openat opens name in dirfd, without updating its access time while the kernel allows that.
func (w *walker) openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|w.noatime, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EPERM && w.noatime != 0:
			w.noatime = 0 // O_NOATIME needs ownership or CAP_FOWNER
			continue
		}
		return fd, err
	}
}

// statAt fills w.e from the metadata of name in dirfd, symlink target included.
func (w *walker) statAt(dirfd int, name, p string) error {
	var err error
	for {
		err = unix.Fstatat(dirfd, name, &w.st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return errPath("reading metadata of", p, err)
	}
	fillEntry(&w.e, &w.st, p)
	if !w.e.Type.Valid() {
		return errPath("reading metadata of", p, fmt.Errorf("unknown file type %#o", w.st.Mode&unix.S_IFMT))
	}
	if w.e.Type == fsmeta.TypeSymlink {
		target, err := w.readlink(dirfd, name)
		if err != nil {
			return errPath("reading link", p, err)
		}
		w.e.Target, w.e.Size = target, int64(len(target))
	}
	return nil
}

func (w *walker) readlink(dirfd int, name string) (string, error) {
	if w.linkBuf == nil {
		w.linkBuf = make([]byte, 4096)
	}
	for {
		n, err := unix.Readlinkat(dirfd, name, w.linkBuf)
		if err != nil {
			return "", err
		}
		if n < len(w.linkBuf) {
			return string(w.linkBuf[:n]), nil
		}
		w.linkBuf = make([]byte, 2*len(w.linkBuf))
	}
}

// fillEntry sets e from st; Target, Xattrs and Digest are left empty.
func fillEntry(e *fsmeta.Entry, st *unix.Stat_t, p string) {
	*e = fsmeta.Entry{
		Path:  p,
		Mode:  st.Mode & fsmeta.ModePerm,
		UID:   st.Uid,
		GID:   st.Gid,
		MTime: unix.TimespecToNsec(st.Mtim),
		Dev:   uint64(st.Dev),
		Ino:   uint64(st.Ino),
		Nlink: uint32(st.Nlink),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type, e.Size = fsmeta.TypeRegular, st.Size
	case unix.S_IFDIR:
		e.Type = fsmeta.TypeDir
	case unix.S_IFLNK:
		e.Type = fsmeta.TypeSymlink
	case unix.S_IFCHR:
		e.Type = fsmeta.TypeCharDev
	case unix.S_IFBLK:
		e.Type = fsmeta.TypeBlockDev
	case unix.S_IFIFO:
		e.Type = fsmeta.TypeFIFO
	case unix.S_IFSOCK:
		e.Type = fsmeta.TypeSocket
	}
	if e.Type == fsmeta.TypeCharDev || e.Type == fsmeta.TypeBlockDev {
		e.DevMajor, e.DevMinor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	}
}

// refreshEntry updates e from the metadata of the file opened for its contents.
func refreshEntry(e *fsmeta.Entry, st *unix.Stat_t) {
	e.Size, e.MTime = st.Size, unix.TimespecToNsec(st.Mtim)
	e.Mode, e.UID, e.GID, e.Nlink = st.Mode&fsmeta.ModePerm, st.Uid, st.Gid, uint32(st.Nlink)
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

func relOrDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// xattrPath names name in dirfd for the l*xattr calls, which take no directory descriptor:
// through /proc/self/fd when mounted, which keeps the lookup inside the open directory.
func (w *walker) xattrPath(dirfd int, name, p string) string {
	if w.procFD {
		return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
	}
	if p == "." {
		return w.rootAbs
	}
	return strings.TrimSuffix(w.rootAbs, "/") + "/" + p
}
