package fswalk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"golang.org/x/sys/unix"
)

// WriteFiles streams a PAX tar, written as WriteTar writes it, of the named paths only, in the
// order given. Paths are slash paths from the root, with or without a leading "/". Each is
// resolved inside the root: its parent directories may be symlinks that stay inside the root,
// the path itself is never followed (a symlink is written as a symlink). A named directory is
// written as an entry only, or with its whole subtree if recursive; "." (the root) writes
// nothing, or the whole tree if recursive. Parents of a named path are not added.
//
// A path that is outside the root ("../x", "/../../etc/shadow", or reached through a symlink
// that is absolute or climbs out) ends the stream with an error wrapping ErrOutsideRoot that
// names it: the request is wrong, not the tree. Lexically outside paths are refused before
// anything is written. Paths excluded by opts.Excludes, or under a mount point whose contents
// a walk skips, are left out as a walk leaves them out. Other per-path errors go to opts.OnError.
func WriteFiles(ctx context.Context, w io.Writer, root string, paths []string, opts Options, recursive bool) (Stats, error) {
	rels := make([]string, len(paths))
	for i, p := range paths {
		rel, err := cleanRel(p)
		if err != nil {
			return Stats{}, err
		}
		rels[i] = rel
	}
	wk, err := newWalker(ctx, root, opts)
	if err != nil {
		return Stats{}, err
	}
	defer wk.close()
	r, err := os.OpenRoot(wk.rootAbs)
	if err != nil {
		return Stats{}, fmt.Errorf("opening root: %w", err)
	}
	defer r.Close()
	t := newTarWriter(wk, w)
	wk.visit = t.add
	wk.noDeeper = !recursive
	for i, rel := range rels {
		if err = wk.checkCtx(); err != nil {
			break
		}
		if err = wk.named(r, paths[i], rel); err != nil {
			break
		}
	}
	return t.finish(err)
}

// Hash returns the sha256 of each named regular file, resolved inside the root as WriteFiles
// resolves paths, in the order given. Errors are per path: a path outside the root, a file that
// is not regular (a symlink is not followed), one on a pseudo filesystem a walk skips, one that
// vanished or changed while being read.
func Hash(ctx context.Context, root string, paths []string) []HashResult {
	return HashMemo(ctx, root, paths, nil)
}

// HashMemo is Hash that takes digests from memo (nil: none) for files whose state it holds
// and remembers the others'.
func HashMemo(ctx context.Context, root string, paths []string, memo *DigestMemo) []HashResult {
	res := make([]HashResult, len(paths))
	for i, p := range paths {
		res[i].Path = p
	}
	fail := func(from int, err error) []HashResult {
		for i := from; i < len(res); i++ {
			res[i].Err = err.Error()
		}
		return res
	}
	wk, err := newWalker(ctx, root, Options{})
	if err != nil {
		return fail(0, err)
	}
	defer wk.close()
	r, err := os.OpenRoot(wk.rootAbs)
	if err != nil {
		return fail(0, fmt.Errorf("opening root: %w", err))
	}
	defer r.Close()
	for i, p := range paths {
		if err := wk.checkCtx(); err != nil {
			return fail(i, err)
		}
		res[i].Digest, res[i].Size, err = wk.hashNamed(r, p, memo)
		if err != nil {
			res[i].Err = err.Error()
		}
	}
	return res
}

// errSkipped refuses to hash files on pseudo filesystems (/proc/kcore says it holds 128 TiB).
var errSkipped = errors.New("on a pseudo filesystem whose contents are skipped")

// cleanRel turns a path from the root into a clean relative slash path ("." for the root), or
// an error wrapping ErrOutsideRoot if ".." climbs above the root.
func cleanRel(p string) (string, error) {
	rel := strings.TrimLeft(p, "/")
	if rel == "" {
		return ".", nil
	}
	if strings.IndexByte(rel, 0) >= 0 {
		return "", fmt.Errorf("resolving %q: NUL byte in path", p)
	}
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("resolving %q: %w", p, ErrOutsideRoot)
	}
	return path.Clean(rel), nil
}

// named writes the entry at rel (requested as p), and its subtree unless w.noDeeper.
func (w *walker) named(r *os.Root, p, rel string) error {
	if rel == "." {
		if w.noDeeper {
			return nil
		}
		return w.walkDir(w.rootfd, "", w.rootDev)
	}
	if w.ex.matchAny(rel) || w.underSkippedMount(rel) {
		return nil
	}
	dirfd, parentDev, closeDir, err := w.openParent(r, p, rel)
	if errors.Is(err, ErrOutsideRoot) {
		return err
	}
	if err != nil {
		return w.report(rel, err)
	}
	defer closeDir()
	if w.onSkippedMount(dirfd, parentDev) {
		return nil
	}
	w.names = append(w.names[:0], strings.Split(rel, "/")...)
	defer func() { w.names = w.names[:0] }()
	return w.child(dirfd, rel, path.Base(rel), parentDev)
}

// underSkippedMount reports whether a parent directory of rel is a mount point whose contents
// a walk skips.
func (w *walker) underSkippedMount(rel string) bool {
	first, _, nested := strings.Cut(rel, "/")
	if w.opts.TreatAsMounts && nested && treatAsMounts[first] {
		return true
	}
	if w.opts.Pseudo != PseudoSkip {
		return false
	}
	for i := strings.IndexByte(rel, '/'); i >= 0; {
		if IsPseudoFS(w.mounts[rel[:i]]) {
			return true
		}
		j := strings.IndexByte(rel[i+1:], '/')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// onSkippedMount reports whether the open directory dirfd is on a pseudo filesystem that the
// mountinfo did not show, but the root is not on.
func (w *walker) onSkippedMount(dirfd int, dev uint64) bool {
	return dev != w.rootDev && w.opts.Pseudo == PseudoSkip && isPseudoMagic(dirfd)
}

// openParent opens the parent directory of rel (requested as p) inside r. A parent outside the
// root is an error wrapping ErrOutsideRoot.
func (w *walker) openParent(r *os.Root, p, rel string) (dirfd int, dev uint64, closeDir func(), err error) {
	dir := path.Dir(rel)
	if dir == "." {
		return w.rootfd, w.rootDev, func() {}, nil
	}
	f, err := r.Open(dir)
	if err != nil {
		if isEscape(err) {
			return -1, 0, nil, fmt.Errorf("resolving %q: %w", p, ErrOutsideRoot)
		}
		return -1, 0, nil, errPath("opening directory", dir, err)
	}
	var st unix.Stat_t
	fd := int(f.Fd())
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return -1, 0, nil, errPath("reading metadata of", dir, err)
	}
	return fd, uint64(st.Dev), func() { f.Close() }, nil
}

// isEscape reports whether err is os.Root's refusal of a path that escapes it. That error is
// unexported; its text is the only handle on it (pinned by TestOutsideRoot).
func isEscape(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}

// hashNamed returns the digest and size of the regular file at p.
func (w *walker) hashNamed(r *os.Root, p string, memo *DigestMemo) (string, int64, error) {
	fd, err := w.openNamed(r, p, "hashing")
	if err != nil {
		return "", 0, err
	}
	defer unix.Close(fd)
	// The state of the open file itself, so the memo's answer is about this very file.
	st := fileState{dev: uint64(w.fst.Dev), ino: w.fst.Ino, size: w.fst.Size,
		mtime: w.fst.Mtim.Nano(), ctime: w.fst.Ctim.Nano()}
	if d, ok := memo.get(st); ok {
		return d, st.size, nil
	}
	d, perPath, fatal := hashFD(w.ctx, fd, &w.fst, w.copyBuf())
	if err := errors.Join(perPath, fatal); err != nil {
		return "", 0, errPath("reading", p, err)
	}
	memo.put(st, d)
	return d, w.fst.Size, nil
}

// openNamed opens the regular file at p inside the root for reading: never through a symlink
// that leaves the root, never on a pseudo filesystem, never a device (opening some has side
// effects: a tape rewinds). w.fst holds its stat on return.
func (w *walker) openNamed(r *os.Root, p, op string) (int, error) {
	rel, err := cleanRel(p)
	if err != nil {
		return -1, err
	}
	if w.underSkippedMount(rel) {
		return -1, fmt.Errorf("%s %q: %w", op, p, errSkipped)
	}
	dirfd, dev, closeDir, err := w.openParent(r, p, rel)
	if err != nil {
		return -1, err
	}
	defer closeDir()
	if w.onSkippedMount(dirfd, dev) {
		return -1, fmt.Errorf("%s %q: %w", op, p, errSkipped)
	}
	if err := w.statAt(dirfd, path.Base(rel), rel); err != nil {
		return -1, err
	}
	if w.e.Type != fsmeta.TypeRegular {
		return -1, errPath(op, p, fmt.Errorf("a %s, not a regular file", w.e.Type))
	}
	return w.openFile(dirfd, path.Base(rel), &w.e)
}

// OpenRegular opens the regular file at p (a slash path from the root) for reading, resolved as
// Hash resolves paths: a path outside the root is an error wrapping ErrOutsideRoot; symlinks,
// devices and files on pseudo filesystems are refused.
func OpenRegular(ctx context.Context, root, p string) (*os.File, error) {
	wk, err := newWalker(ctx, root, Options{})
	if err != nil {
		return nil, err
	}
	defer wk.close()
	r, err := os.OpenRoot(wk.rootAbs)
	if err != nil {
		return nil, fmt.Errorf("opening root: %w", err)
	}
	defer r.Close()
	fd, err := wk.openNamed(r, p, "opening")
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}
