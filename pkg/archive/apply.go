package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// Option configures Apply.
type Option func(*options)

type options struct {
	layer      bool
	lenient    bool
	logf       func(string, ...any)
	privileged bool
	donor      string
	taken      *int
}

// Layer applies the stream as an OCI layer: ".wh.NAME" deletes NAME from what the directory
// already holds, ".wh..wh..opq" hides everything it held in its directory, and the layer's
// own root entry is ignored (the runtime owns the root). Without it, names are taken as they
// are and the root entry's metadata is restored.
func Layer() Option { return func(o *options) { o.layer = true } }

// Logf makes Apply lenient: metadata it cannot restore (owners, modes, extended attributes,
// times), device nodes it may not make and entries of unsupported types are reported through
// logf (nil discards) and skipped. Without it they are errors.
func Logf(logf func(string, ...any)) Option {
	return func(o *options) {
		o.lenient = true
		o.logf = logf
	}
}

// Donor makes Apply take a regular file's contents from the directory dir instead of the
// stream when dir holds, at the entry's name, a regular file of the entry's size and
// modification second: that file is moved (renamed) into place, keeps only the entry's
// extended attributes, and the stream's copy is skipped. It is for a tree the stream was made
// from and that nothing changed since (a build's overlay upper directory, on the same
// filesystem): the caller vouches for its contents. Anything else is written from the stream.
// taken, when not nil, counts the files moved.
func Donor(dir string, taken *int) Option {
	return func(o *options) { o.donor, o.taken = dir, taken }
}

// withPrivileged overrides whether Apply runs with the privilege to set owners and make
// device nodes (tests).
func withPrivileged(p bool) Option { return func(o *options) { o.privileged = p } }

// Apply extracts the uncompressed tar stream r into the existing directory root, as a chroot
// would see it: names are checked with SafeName; symlinks met on the way are followed inside
// root (absolute targets count from root) and refused when they climb out; hard links must
// name a file inside root. Every file operation goes through an os.Root, so nothing is
// written outside root even if the tree changes underfoot. Run as root, Apply restores
// owners, modes (set-id bits too), extended attributes (security.capability included) and
// device nodes; otherwise files belong to the caller and device nodes are skipped.
func Apply(ctx context.Context, root string, r io.Reader, opts ...Option) error {
	o := options{privileged: os.Geteuid() == 0}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logf == nil {
		o.logf = func(string, ...any) {}
	}
	rt, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("opening %s: %w", root, err)
	}
	defer rt.Close()
	a := &applier{root: rt, opts: o, touched: map[string]bool{}, seen: map[string]byte{}}
	if o.donor != "" {
		if a.donor, err = os.OpenRoot(o.donor); err != nil {
			return fmt.Errorf("opening %s: %w", o.donor, err)
		}
		defer func() {
			if a.donor != nil {
				a.donor.Close()
			}
		}()
	}
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
			return fmt.Errorf("reading tar: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	return a.finish()
}

// applier applies one tar stream to a root.
type applier struct {
	root    *os.Root
	opts    options
	touched map[string]bool // resolved names this stream wrote, with their parents
	dirs    []dirMeta       // directories whose metadata is set at the end
	donor   *os.Root        // Donor's directory, or nil
	rel     string          // the current entry's name as the stream gives it
	// seen are the names a layer stream holds: 'w' for a whiteout, 'e' for an entry (Layer).
	seen map[string]byte
}

type dirMeta struct {
	name string // resolved
	hdr  *tar.Header
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	rel, err := SafeName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		if !a.opts.layer && hdr.Typeflag == tar.TypeDir {
			a.dirs = append(a.dirs, dirMeta{name: ".", hdr: hdr})
		}
		return nil
	}
	dir, base := path.Split(rel)
	if a.opts.layer {
		switch {
		case base == OpaqueMarker && dir == "":
			return fmt.Errorf("%w: an opaque marker at the layer's root (overlayfs ignores it)", ErrEngineDiffers)
		case base == OpaqueMarker:
			return a.opaque(dir)
		case strings.HasPrefix(base, WhiteoutPrefix):
			name := strings.TrimPrefix(base, WhiteoutPrefix)
			if err := a.see(path.Join(dir, name), 'w'); err != nil {
				return err
			}
			return a.whiteout(dir, name)
		}
		if err := a.see(rel, 'e'); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeLink {
			if t, err := SafeName(hdr.Linkname); err != nil || a.seen[t] != 'e' {
				return fmt.Errorf("%w: a hard link to %q, which the layer does not hold before it", ErrEngineDiffers, hdr.Linkname)
			}
		}
	}
	parent, err := a.resolveDir(dir, true)
	if err != nil {
		return err
	}
	target := path.Join(parent, base)
	a.rel = rel
	if err := a.create(target, hdr, r); err != nil {
		return err
	}
	a.touch(target)
	return nil
}

// see records that a layer stream holds name as a whiteout ('w') or an entry ('e'): both in one
// layer is refused, an engine would apply the pair otherwise than a chroot-like reading does.
func (a *applier) see(name string, kind byte) error {
	if prev, ok := a.seen[name]; ok && prev != kind {
		return fmt.Errorf("%w: the layer holds both a whiteout of %q and an entry there", ErrEngineDiffers, name)
	}
	a.seen[name] = kind
	return nil
}

// touch records that this stream wrote name and needs its parents.
func (a *applier) touch(name string) {
	for ; name != "." && !a.touched[name]; name = path.Dir(name) {
		a.touched[name] = true
	}
}

// whiteout deletes name from dir, if it is there.
func (a *applier) whiteout(dir, name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: whiteout of %q", ErrUnsafePath, name)
	}
	parent, err := a.resolveDir(dir, false)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		// An engine makes the missing directory (hiding a file of the layers below there).
		return fmt.Errorf("%w: a whiteout in %q, which is not a directory of the layers below", ErrEngineDiffers, dir)
	}
	if err != nil {
		return err
	}
	return a.root.RemoveAll(path.Join(parent, name))
}

// opaque deletes what was in dir before this stream, keeping what it wrote there.
func (a *applier) opaque(dir string) error {
	name, err := a.resolveDir(dir, true)
	if err != nil {
		return err
	}
	a.touch(name)
	return a.prune(name)
}

func (a *applier) prune(dir string) error {
	f, err := a.root.Open(dir)
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		switch {
		case !a.touched[p]:
			if err := a.root.RemoveAll(p); err != nil {
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

// finish sets the directories' metadata, deepest first, now that nothing more is written
// into them.
func (a *applier) finish() error {
	sort.SliceStable(a.dirs, func(i, j int) bool { return len(a.dirs[i].name) > len(a.dirs[j].name) })
	for _, d := range a.dirs {
		// A later entry may have replaced the directory (by a symlink, even).
		if fi, err := a.root.Lstat(d.name); err != nil || !fi.IsDir() {
			continue
		}
		if err := a.meta(d.name, d.hdr); err != nil {
			return fmt.Errorf("entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}
