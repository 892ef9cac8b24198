package verify

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/fsmeta"
)

// node is one name of the flattened image: metadata and the contents' digest, never contents.
// About 80 bytes, plus the name and its slot in the parent's map.
type node struct {
	children map[string]*node // directories only; nil until the first child
	extra    *extra           // rare fields
	size     int64
	uid, gid uint32
	mode     uint32
	layer    int32 // the last layer that wrote this node or something below it
	typ      fsmeta.Type
	digest   [sha256.Size]byte // regular files
}

// extra holds what few entries have.
type extra struct {
	target       string // symlink target
	major, minor uint32
	xattrs       map[string][]byte
	group        *linkGroup // names joined by tar hard links
}

// linkGroup is a set of names that tar hard links made one file.
type linkGroup struct {
	leader string // the first member in walk order, set while comparing
}

func (n *node) ext() *extra {
	if n.extra == nil {
		n.extra = &extra{}
	}
	return n.extra
}

// tree is the flattened image: a tree of nodes rooted at ".".
type tree struct {
	root    *node
	entries int64 // nodes added, minus those removed
}

func newTree() *tree { return &tree{root: &node{typ: fsmeta.TypeDir, mode: 0o755}} }

// flattener applies layers to a tree in order, as the Docker engine stacks them.
type flattener struct {
	t     *tree
	layer int32
	// seen are the current layer's names: 'w' for a whiteout, 'e' for an entry.
	seen  map[string]byte
	h     hash.Hash
	buf   []byte
	stage *stager // package databases, nil when not wanted
	count *counter
}

func newFlattener(stage *stager) *flattener {
	return &flattener{t: newTree(), h: sha256.New(), buf: make([]byte, 256<<10), stage: stage}
}

// imageSource is an image to flatten: its labels, and its layers applied to a flattener.
type imageSource interface {
	labels() (map[string]string, error)
	flatten(ctx context.Context, f *flattener) error
}

// v1Image is an image whose layers can be read in order (archive, layout, registry).
type v1Image struct{ img v1.Image }

func (v v1Image) labels() (map[string]string, error) {
	cfg, err := v.img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	return cfg.Config.Labels, nil
}

// flatten streams every layer into f, checking each layer's digests at its end.
func (v v1Image) flatten(ctx context.Context, f *flattener) error {
	layers, err := v.img.Layers()
	if err != nil {
		return fmt.Errorf("reading layers: %w", err)
	}
	cfg, err := v.img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return fmt.Errorf("reading layers: the manifest lists %d, the config %d", len(layers), len(cfg.RootFS.DiffIDs))
	}
	for k, l := range layers {
		if f.count != nil {
			l = countedLayer{Layer: l, c: f.count}
		}
		if err := f.flattenLayer(ctx, int32(k), l, cfg.RootFS.DiffIDs[k]); err != nil {
			d, _ := l.Digest()
			return fmt.Errorf("reading layer %d (%s): %w", k, d, err)
		}
	}
	return nil
}

func (f *flattener) flattenLayer(ctx context.Context, k int32, l v1.Layer, diffID v1.Hash) error {
	rc, err := openLayer(l, diffID)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := f.apply(ctx, k, rc); err != nil {
		return err
	}
	_, err = io.CopyBuffer(io.Discard, rc, f.buf) // to EOF, where the digests are checked
	return err
}

// apply reads one uncompressed layer tar and applies its entries as layer k.
func (f *flattener) apply(ctx context.Context, k int32, r io.Reader) error {
	f.layer, f.seen = k, map[string]byte{}
	return f.read(ctx, r, f.do)
}

// read parses a layer tar into operations, hashing contents, and passes them to fn in order.
func (f *flattener) read(ctx context.Context, r io.Reader, fn func(op) error) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading layer tar: %w", err)
		}
		o, ok, err := f.parse(hdr, tr)
		if err == nil && ok {
			err = fn(o)
		}
		if err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
}

// opKind is what a layer entry does to the layers below.
type opKind uint8

const (
	opPut      opKind = iota // set a name to a node
	opLink                   // set a name to a hard link of another name
	opWhiteout               // delete a name and what is below it
	opOpaque                 // hide what the layers below hold in a directory
)

// op is one parsed layer entry, to apply on the layers below.
type op struct {
	kind      opKind
	dir, base string // dir is "" for the root
	n         *node  // opPut
	target    string // opLink
}

// parse turns a tar entry into an operation; ok is false for entries without one.
func (f *flattener) parse(hdr *tar.Header, r io.Reader) (o op, ok bool, err error) {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return o, false, nil
	}
	p, err := archive.SafeName(hdr.Name)
	if err != nil || p == "." {
		return o, false, err // the runtime owns the root
	}
	dir, base := path.Split(p)
	o.dir, o.base = strings.TrimSuffix(dir, "/"), base
	switch {
	case base == archive.OpaqueMarker:
		o.kind = opOpaque
	case strings.HasPrefix(base, archive.WhiteoutPrefix):
		o.kind, o.base = opWhiteout, strings.TrimPrefix(base, archive.WhiteoutPrefix)
	case hdr.Typeflag == tar.TypeLink:
		o.kind = opLink
		if o.target, err = archive.SafeName(hdr.Linkname); err != nil {
			return o, false, fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
	default:
		o.n, err = f.newNode(p, hdr, r)
	}
	return o, err == nil, err
}

// do applies o as the current layer. What an engine would apply otherwise than this reading
// (archive.ErrEngineDiffers) is an error: verify cannot vouch for what a container would see.
func (f *flattener) do(o op) error {
	if err := f.engineCheck(o); err != nil {
		return err
	}
	switch o.kind {
	case opOpaque:
		f.opaque(o.dir)
	case opWhiteout:
		f.whiteout(o.dir, o.base)
	case opLink:
		n, err := f.link(o.target)
		if err != nil {
			return err
		}
		f.put(o.dir, o.base, n)
	default:
		o.n.layer = f.layer
		f.put(o.dir, o.base, o.n) // the tree takes the node: ops are applied once
	}
	return nil
}

// engineCheck refuses what engines apply otherwise than the flattener (archive.Apply refuses
// the same): an opaque marker at a layer's root, a whiteout and an entry of one name in one
// layer, a whiteout in what is not a directory of the layers below (an engine makes a
// directory there), and a hard link to a file the layer does not hold before it.
func (f *flattener) engineCheck(o op) error {
	name := path.Join(o.dir, o.base)
	kind := byte('e')
	switch o.kind {
	case opOpaque:
		if o.dir == "" {
			return fmt.Errorf("%w: an opaque marker at the layer's root (overlayfs ignores it)", archive.ErrEngineDiffers)
		}
		return nil
	case opWhiteout:
		kind = 'w'
		if parent := f.lookup(o.dir); o.dir != "" && (parent == nil || parent.typ != fsmeta.TypeDir) {
			return fmt.Errorf("%w: a whiteout in %q, which is not a directory of the layers below", archive.ErrEngineDiffers, o.dir)
		}
	case opLink:
		if f.seen[o.target] != 'e' {
			return fmt.Errorf("%w: a hard link to %q, which the layer does not hold before it", archive.ErrEngineDiffers, o.target)
		}
	}
	if prev, ok := f.seen[name]; ok && prev != kind {
		return fmt.Errorf("%w: the layer holds both a whiteout of %q and an entry there", archive.ErrEngineDiffers, name)
	}
	f.seen[name] = kind
	return nil
}

// newNode builds the node a header describes, hashing a regular file's contents.
func (f *flattener) newNode(p string, hdr *tar.Header, r io.Reader) (*node, error) {
	e, err := fsmeta.FromTarHeader(hdr)
	if err != nil {
		return nil, err
	}
	n := &node{typ: e.Type, mode: e.Mode, uid: e.UID, gid: e.GID}
	switch e.Type {
	case fsmeta.TypeRegular:
		if err := f.hashContents(n, p, r, e.Size); err != nil {
			return nil, err
		}
	case fsmeta.TypeSymlink:
		n.ext().target = e.Target
		f.stage.symlink(p, e.Target)
	case fsmeta.TypeCharDev, fsmeta.TypeBlockDev:
		n.ext().major, n.ext().minor = e.DevMajor, e.DevMinor
	}
	if len(e.Xattrs) > 0 {
		n.ext().xattrs = e.Xattrs
	}
	return n, nil
}

func (f *flattener) hashContents(n *node, p string, r io.Reader, size int64) error {
	f.h.Reset()
	w := io.Writer(f.h)
	sw := f.stage.file(p)
	if sw != nil {
		w = io.MultiWriter(f.h, sw)
	}
	got, err := io.CopyBuffer(w, r, f.buf)
	if err != nil {
		return fmt.Errorf("reading contents: %w", err)
	}
	if got != size {
		return fmt.Errorf("contents of %d bytes, the header says %d", got, size)
	}
	n.size = size
	f.h.Sum(n.digest[:0])
	if sw != nil {
		return f.stage.done(p, n.digest)
	}
	return nil
}

// link returns a new name for the file target names: same metadata, same link group.
func (f *flattener) link(target string) (*node, error) {
	t := f.lookup(target)
	if t == nil {
		return nil, fmt.Errorf("hard link to %q, which no layer holds", target)
	}
	if t.typ == fsmeta.TypeDir {
		return nil, fmt.Errorf("hard link to directory %q", target)
	}
	if t.ext().group == nil {
		t.extra.group = &linkGroup{}
	}
	n := *t
	x := *t.extra
	n.extra, n.layer, n.children = &x, f.layer, nil
	return &n, nil
}

// lookup returns the node at the clean relative path p, or nil.
func (f *flattener) lookup(p string) *node { return lookupTree(f.t, p) }

// dir returns the directory dir, making it (and its parents) as the engine does when a layer
// names a path below something that is not a directory. Every node on the way is marked as
// touched by the current layer.
func (f *flattener) dir(dir string) *node {
	n := f.t.root
	n.layer = f.layer
	if dir == "" {
		return n
	}
	for _, c := range strings.Split(dir, "/") {
		child := n.children[c]
		if child == nil || child.typ != fsmeta.TypeDir {
			child = &node{typ: fsmeta.TypeDir, mode: 0o755}
			f.replace(n, c, child)
		}
		child.layer = f.layer
		n = child
	}
	return n
}

// put sets name in dir to n. A directory over a directory keeps the children below it.
func (f *flattener) put(dir, name string, n *node) {
	parent := f.dir(dir)
	if old := parent.children[name]; old != nil && old.typ == fsmeta.TypeDir && n.typ == fsmeta.TypeDir {
		n.children = old.children
	}
	f.replace(parent, name, n)
}

// replace sets parent's child name to n, dropping what was there with its subtree.
func (f *flattener) replace(parent *node, name string, n *node) {
	if parent.children == nil {
		parent.children = make(map[string]*node)
	}
	if old, ok := parent.children[name]; ok {
		if n.children == nil || old.children == nil {
			f.t.entries -= count(old)
		} else {
			f.t.entries--
		}
	} else {
		name = strings.Clone(name) // do not keep the header's whole name alive
	}
	parent.children[name] = n
	f.t.entries++
}

// count returns how many nodes the subtree at n holds, n included.
func count(n *node) int64 {
	c := int64(1)
	for _, ch := range n.children {
		c += count(ch)
	}
	return c
}

// whiteout deletes name (and what is below it) from dir, if the layers below hold it.
func (f *flattener) whiteout(dir, name string) {
	if name == "" || name == "." || name == ".." {
		return
	}
	parent := f.t.root
	if dir != "" {
		parent = f.lookup(dir)
	}
	if parent == nil {
		return
	}
	if old, ok := parent.children[name]; ok {
		f.t.entries -= count(old)
		delete(parent.children, name)
	}
}

// opaque hides what the layers below put in dir, keeping what the current layer wrote there.
func (f *flattener) opaque(dir string) {
	f.prune(f.dir(dir))
}

func (f *flattener) prune(d *node) {
	for name, c := range d.children {
		switch {
		case c.layer < f.layer:
			f.t.entries -= count(c)
			delete(d.children, name)
		case c.typ == fsmeta.TypeDir:
			f.prune(c)
		}
	}
}

// sortedNames returns the names of d's children in byte order, as a walk visits them.
func sortedNames(d *node) []string {
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
