package verify

import (
	"fmt"
	"path"
	"strings"
)

// matcher matches anchored exclude patterns as the agent's walk does: a pattern of n components
// matches a path of n components (and, as the walk never descends into it, what is below).
type matcher struct {
	byDepth map[int][][]string
}

func newMatcher(patterns []string) (*matcher, error) {
	m := &matcher{byDepth: map[int][][]string{}}
	for _, raw := range patterns {
		p := path.Clean("/" + raw)
		if p == "/" {
			continue
		}
		parts := strings.Split(p[1:], "/")
		for _, s := range parts {
			if _, err := path.Match(s, ""); err != nil {
				return nil, fmt.Errorf("compiling exclude %q: %w", raw, err)
			}
		}
		m.byDepth[len(parts)] = append(m.byDepth[len(parts)], parts)
	}
	return m, nil
}

// match reports whether a pattern with exactly len(names) components matches names.
func (m *matcher) match(names []string) bool {
Patterns:
	for _, pat := range m.byDepth[len(names)] {
		for i, s := range pat {
			if ok, _ := path.Match(s, names[i]); !ok {
				continue Patterns
			}
		}
		return true
	}
	return false
}

// imageIter visits the flattened image in the order of the agent's walk: a directory before
// its contents, siblings in the byte order of their names. Excluded names are left out with
// what is below them. Only the current path is built; the tree is never copied.
type imageIter struct {
	ex    *matcher
	stack []iterFrame
	parts []string // components of the current path

	path string
	n    *node
	ok   bool
}

type iterFrame struct {
	dir   string // "" for the root
	d     *node
	names []string
	i     int
}

func newImageIter(t *tree, ex *matcher) *imageIter {
	it := &imageIter{ex: ex}
	it.stack = append(it.stack, iterFrame{d: t.root, names: sortedNames(t.root)})
	it.next(false)
	return it
}

// next moves to the following entry, into the current one's contents when descend is set.
func (it *imageIter) next(descend bool) {
	if it.ok && descend && len(it.n.children) > 0 {
		it.stack = append(it.stack, iterFrame{dir: it.path, d: it.n, names: sortedNames(it.n)})
	}
	for len(it.stack) > 0 {
		top := &it.stack[len(it.stack)-1]
		if top.i >= len(top.names) {
			it.stack = it.stack[:len(it.stack)-1]
			continue
		}
		name := top.names[top.i]
		top.i++
		it.parts = append(it.parts[:len(it.stack)-1], name)
		if it.ex.match(it.parts) {
			continue
		}
		it.n, it.ok = top.d.children[name], true
		it.path = name
		if top.dir != "" {
			it.path = top.dir + "/" + name
		}
		return
	}
	it.path, it.n, it.ok = "", nil, false
}
