package vmread

import (
	"context"
	"fmt"
	"sort"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Deps answers dependency queries in the VM's own context: the edges of each named package
// resolved to the installed member of every group of alternatives, through Provides.
func (a *Reader) Deps(ctx context.Context, args wire.DepsArgs) ([]wire.DepsAnswer, error) {
	db, err := a.Packages(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading packages: %w", err)
	}
	idx := newIndex(db)
	seen := map[string]bool{}
	queue := append([]string(nil), args.Names...)
	var out []wire.DepsAnswer
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		ans := idx.answer(name)
		out = append(out, ans)
		if args.Recursive {
			for _, e := range ans.Edges {
				if e.To != "" && !seen[e.To] {
					queue = append(queue, e.To)
				}
			}
		}
	}
	if args.Recursive {
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	}
	return out, nil
}

type index struct {
	byName   map[string]*pkgmgr.Package
	provides map[string][]string // virtual name -> installed providers (sorted)
}

func newIndex(db *pkgmgr.DB) *index {
	ix := &index{byName: map[string]*pkgmgr.Package{}, provides: map[string][]string{}}
	for i := range db.Packages {
		p := &db.Packages[i]
		if _, dup := ix.byName[p.Name]; !dup {
			ix.byName[p.Name] = p
		}
		for _, pr := range p.Provides {
			ix.provides[pr.Name] = append(ix.provides[pr.Name], p.Name)
		}
	}
	for k := range ix.provides {
		sort.Strings(ix.provides[k])
	}
	return ix
}

// resolve returns the installed package that satisfies one of alts, preferring earlier
// alternatives and real packages over providers.
func (ix *index) resolve(alts []pkgmgr.Relation) string {
	for _, r := range alts {
		if _, ok := ix.byName[r.Name]; ok {
			return r.Name
		}
		if prov := ix.provides[r.Name]; len(prov) > 0 {
			return prov[0]
		}
	}
	return ""
}

func (ix *index) answer(name string) wire.DepsAnswer {
	p, ok := ix.byName[name]
	if !ok {
		return wire.DepsAnswer{Name: name}
	}
	ans := wire.DepsAnswer{Name: name, Installed: true, Version: p.Version, Arch: p.Arch}
	for _, d := range p.Depends {
		to := ix.resolve(d.Alts)
		if to == name {
			to = "" // a self-dependency is harmless: no edge
		}
		ans.Edges = append(ans.Edges, wire.Edge{Kind: d.Kind, Alts: d.Alts, To: to})
	}
	return ans
}
