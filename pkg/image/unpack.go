package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1"
)

// ErrUnsafePath is wrapped by Unpack's errors for entries that would write outside the
// directory: absolute names, "..", and links or symlinked parents that climb out of it.
var ErrUnsafePath = errors.New("path escapes the root")

var errNotDir = errors.New("not a directory")

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	maxSymlinkHops = 40
)

// Unpack applies img's layers in order to dir (created if missing), as the Docker engine does:
// ".wh.NAME" entries delete NAME from the layers below, ".wh..wh..opq" hides everything the
// layers below put in its directory, and a later entry replaces an earlier one. Names are checked:
// nothing is written outside dir, whether by "..", an absolute name, a hardlink, or a symlink met
// on the way (absolute symlinks count from dir, as in a chroot). Run as root, Unpack keeps
// owners, modes (set-id bits too), extended attributes (security.capability included) and
// device nodes; otherwise files belong to the caller and device nodes are skipped.
func Unpack(ctx context.Context, img v1.Image, dir string) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("reading layers: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for k, l := range layers {
		if err := unpackLayer(ctx, dir, l); err != nil {
			d, _ := l.Digest()
			return fmt.Errorf("unpacking layer %d (%s): %w", k, d, err)
		}
	}
	return nil
}

func unpackLayer(ctx context.Context, dir string, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := applyLayer(ctx, dir, rc); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc) // reach EOF, where the digest is checked
	return err
}

// applier applies one layer's tar stream to a root directory.
type applier struct {
	root    string
	root0   bool            // running as root: owners, devices
	touched map[string]bool // host paths this layer wrote, with their parents
	dirs    []dirMeta       // directories whose mode and times are set at the end
}

type dirMeta struct {
	path string
	hdr  *tar.Header
}

// applyLayer applies the uncompressed layer r to root.
func applyLayer(ctx context.Context, root string, r io.Reader) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	a := &applier{root: root, root0: os.Geteuid() == 0, touched: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading layer tar: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	return a.finish()
}

// cleanName turns a tar entry name into a clean relative path, refusing names that leave the root.
func cleanName(n string) (string, error) {
	if n == "" || strings.HasPrefix(n, "/") || strings.ContainsRune(n, 0) {
		return "", fmt.Errorf("%w: name is empty, absolute or holds NUL", ErrUnsafePath)
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: name climbs out with ..", ErrUnsafePath)
	}
	return c, nil
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	}
	rel, err := cleanName(hdr.Name)
	if err != nil || rel == "." {
		return err
	}
	dir, base := path.Split(rel)
	switch {
	case base == opaqueMarker:
		return a.opaque(dir)
	case strings.HasPrefix(base, whiteoutPrefix):
		return a.whiteout(dir, strings.TrimPrefix(base, whiteoutPrefix))
	}
	parent, err := a.resolveDir(dir, true)
	if err != nil {
		return err
	}
	target := filepath.Join(parent, base)
	if err := a.create(target, hdr, r); err != nil {
		return err
	}
	a.touch(target)
	return nil
}

// touch records that this layer wrote p and needs its parents.
func (a *applier) touch(p string) {
	for ; p != a.root && len(p) > len(a.root) && !a.touched[p]; p = filepath.Dir(p) {
		a.touched[p] = true
	}
}

// resolveDir returns the host path of the directory rel, following symlinks inside the root and
// creating missing directories when create is set (else it returns an fs.ErrNotExist error).
func (a *applier) resolveDir(rel string, create bool) (string, error) {
	cur := a.root
	comps := splitPath(rel)
	for hops := 0; len(comps) > 0; {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case ".":
			continue
		case "..":
			if cur == a.root {
				return "", fmt.Errorf("%w: %s climbs out with ..", ErrUnsafePath, rel)
			}
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := os.Mkdir(next, 0o755); err != nil {
				return "", err
			}
			cur = next
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > maxSymlinkHops {
				return "", fmt.Errorf("too many symlinks in %s", rel)
			}
			t, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(t, "/") {
				cur = a.root
			}
			if escapes(a.root, cur, t) {
				return "", fmt.Errorf("%w: symlink %s -> %s", ErrUnsafePath, a.relName(next), t)
			}
			comps = append(splitPath(t), comps...)
		case fi.IsDir():
			cur = next
		default:
			return "", fmt.Errorf("%s: %w", a.relName(next), errNotDir)
		}
	}
	return cur, nil
}

// escapes reports whether the relative symlink target t, read in directory cur, climbs above root.
func escapes(root, cur, t string) bool {
	if strings.HasPrefix(t, "/") {
		return false
	}
	rel, _ := filepath.Rel(root, cur)
	c := path.Clean(path.Join(filepath.ToSlash(rel), t))
	return c == ".." || strings.HasPrefix(c, "../")
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

func (a *applier) relName(host string) string {
	r, err := filepath.Rel(a.root, host)
	if err != nil {
		return host
	}
	return r
}

// whiteout deletes name from dir, if it is there.
func (a *applier) whiteout(dir, name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: whiteout of %q", ErrUnsafePath, name)
	}
	parent, err := a.resolveDir(dir, false)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return nil // nothing there to delete
	}
	if err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(parent, name))
}

// opaque deletes what lower layers put in dir, keeping what this layer wrote there.
func (a *applier) opaque(dir string) error {
	host, err := a.resolveDir(dir, true)
	if err != nil {
		return err
	}
	a.touch(host)
	return a.prune(host)
}

func (a *applier) prune(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case !a.touched[p]:
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		case e.IsDir():
			if err := a.prune(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// create makes the entry hdr at target, replacing what is there (a directory stays a directory).
func (a *applier) create(target string, hdr *tar.Header, r io.Reader) error {
	if err := removeExisting(target, hdr.Typeflag == tar.TypeDir); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		a.dirs = append(a.dirs, dirMeta{path: target, hdr: hdr})
		return a.setOwnerXattrs(target, hdr)
	case tar.TypeReg, tar.TypeRegA:
		if err := writeFile(target, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
	case tar.TypeLink:
		return a.hardlink(target, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if hdr.Typeflag != tar.TypeFifo && !a.root0 {
			return nil // only root makes device nodes
		}
		if err := mknod(target, hdr); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	if err := a.setOwnerXattrs(target, hdr); err != nil {
		return err
	}
	return setModeTimes(target, hdr)
}

func (a *applier) hardlink(target, linkname string) error {
	rel, err := cleanName(linkname)
	if err != nil {
		return fmt.Errorf("hardlink to %q: %w", linkname, err)
	}
	dir, base := path.Split(rel)
	parent, err := a.resolveDir(dir, false)
	if err != nil {
		return fmt.Errorf("hardlink to %q: %w", linkname, err)
	}
	src := filepath.Join(parent, base)
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("hardlink to %q: %w", linkname, err)
	}
	if fi.IsDir() || src == a.root {
		return fmt.Errorf("hardlink to directory %q", linkname)
	}
	return os.Link(src, target)
}

func removeExisting(target string, keepDir bool) error {
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir() && keepDir:
		return nil
	case fi.IsDir():
		return os.RemoveAll(target)
	}
	return os.Remove(target)
}

func writeFile(target string, r io.Reader) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (a *applier) setOwnerXattrs(target string, hdr *tar.Header) error {
	if a.root0 {
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	return setXattrs(target, hdr)
}

// setModeTimes sets the permission bits (not of symlinks) and the modification time.
func setModeTimes(target string, hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeSymlink {
		if err := os.Chmod(target, hdr.FileInfo().Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
	}
	return lchtimes(target, hdr.AccessTime, hdr.ModTime)
}

// finish sets the directories' modes and times, deepest first, now that nothing more is
// written into them.
func (a *applier) finish() error {
	sort.SliceStable(a.dirs, func(i, j int) bool { return len(a.dirs[i].path) > len(a.dirs[j].path) })
	for _, d := range a.dirs {
		// A later entry of the layer may have replaced the directory (by a symlink, even).
		if fi, err := os.Lstat(d.path); err != nil || !fi.IsDir() {
			continue
		}
		if err := setModeTimes(d.path, d.hdr); err != nil {
			return fmt.Errorf("entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}
