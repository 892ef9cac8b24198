package layer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/fsmeta"
)

type itemKind uint8

const (
	entryItem    itemKind = iota // a new entry
	whiteoutItem                 // .wh.NAME for a deleted path
	opaqueItem                   // .wh..wh..opq in a replaced directory
)

// item is one tar entry of the layer to write.
type item struct {
	key    string // sort key: the path, whiteouts under a NUL-led name (see plan)
	kind   itemKind
	parent bool          // only there as the parent of what follows
	path   string        // the path it concerns: the entry's, the deleted one, the replaced dir
	e      *fsmeta.Entry // entryItem
}

// plan orders everything a layer holds. Entries come in walk order (diff.ComparePaths); a
// directory's opaque whiteout and the whiteouts of its deleted children come right after the
// directory's own entry, before its other children, as the OCI spec advises: their sort keys
// put a NUL byte, which no name holds, in front of the name ("\x00" for the opaque,
// "\x00NAME" for NAME's whiteout). Whiteouts of the root's children come first of all.
//
// Paths with a component that starts with ".wh." cannot be in a layer (appliers would take them
// for whiteouts); they are returned apart as refused.
func plan(res *diff.Result) (items []item, refused []string, err error) {
	items = make([]item, 0, len(res.Changes)+len(res.Parents)+len(res.Links))
	add := func(e *fsmeta.Entry, parent bool) {
		switch {
		case e == nil || e.Path == "." || e.Type == fsmeta.TypeSocket:
		case hasWhiteoutName(e.Path):
			refused = append(refused, e.Path)
		default:
			items = append(items, item{key: e.Path, kind: entryItem, path: e.Path, e: e, parent: parent})
		}
	}
	for i := range res.Changes {
		c := &res.Changes[i]
		switch c.Kind {
		case diff.Deleted:
			items = append(items, item{key: whiteoutKey(c.Path), kind: whiteoutItem, path: c.Path})
		case diff.DirReplaced:
			add(c.New, false)
			items = append(items, item{key: joinKey(c.Path, "\x00"), kind: opaqueItem, path: c.Path})
		case diff.Added, diff.Modified, diff.Metadata, diff.TypeChanged:
			add(c.New, false)
		default:
			return nil, nil, fmt.Errorf("planning layer: change of unknown kind %q at %q", c.Kind, c.Path)
		}
	}
	for _, e := range res.Parents {
		add(e, true)
	}
	for _, e := range res.Links {
		add(e, false)
	}
	slices.SortFunc(items, func(a, b item) int { return diff.ComparePaths(a.key, b.key) })
	for i := 1; i < len(items); i++ {
		if items[i].key == items[i-1].key {
			return nil, nil, fmt.Errorf("planning layer: %q appears twice", items[i].path)
		}
	}
	slices.SortFunc(refused, diff.ComparePaths)
	return dropEmptyParents(items), refused, nil
}

// dropEmptyParents removes parent directories with nothing of the layer below them (what was
// below was refused), deepest first: in walk order, what is below an item comes right after it.
func dropEmptyParents(items []item) []item {
	out := make([]item, 0, len(items))
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		if it.parent && (len(out) == 0 || !isBelow(out[len(out)-1].key, it.key)) {
			continue
		}
		out = append(out, it)
	}
	slices.Reverse(out)
	return out
}

// isBelow reports whether key p lies below the directory key dir.
func isBelow(p, dir string) bool {
	return len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

// hasWhiteoutName reports whether a component of p starts with ".wh.".
func hasWhiteoutName(p string) bool {
	for {
		if strings.HasPrefix(p, archive.WhiteoutPrefix) {
			return true
		}
		i := strings.IndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[i+1:]
	}
}

func whiteoutKey(p string) string {
	dir, base := splitPath(p)
	return joinKey(dir, "\x00"+base)
}

func joinKey(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// splitPath returns the directory ("." at the top) and the name of p.
func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ".", p
	}
	return p[:i], p[i+1:]
}

// whiteoutName is the tar name of the whiteout of p.
func whiteoutName(p string) string {
	dir, base := splitPath(p)
	return joinKey(dir, archive.WhiteoutPrefix+base)
}

// linkKey identifies an inode of the new tree.
type linkKey struct{ dev, ino uint64 }

// contentPaths returns the files whose contents the layer holds, in layer order: regular files
// with contents, one name per hard-link group (the others become links to it).
func contentPaths(items []item) []string {
	seen := map[linkKey]bool{}
	var paths []string
	for _, it := range items {
		e := it.e
		if it.kind != entryItem || e.Type != fsmeta.TypeRegular {
			continue
		}
		if e.Nlink > 1 {
			k := linkKey{e.Dev, e.Ino}
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		if e.Size > 0 {
			paths = append(paths, e.Path)
		}
	}
	return paths
}
