package pkgmgr

import (
	"sort"
)

// GraphOptions choose which edges the dependency graph holds.
type GraphOptions struct {
	// Recommends makes Recommends edges, as apt does by default (APT::Install-Recommends).
	// Use the setting the installer will use: the roots are only complete when the installer
	// follows exactly the edges the graph followed.
	Recommends bool
}

// Graph is the dependency graph of an installed database: a node per package, an edge from a
// package to the installed package that satisfies each of its dependencies.
type Graph struct {
	Pkgs []*Package
	Out  [][]int // Out[i]: nodes that Pkgs[i] depends on, sorted, without self-loops or repeats
}

// NewGraph builds the graph of db. A group of alternatives resolves to its first installed
// member, directly or through Provides; an unsatisfied dependency makes no edge.
func NewGraph(db *DB, opts GraphOptions) *Graph {
	g := &Graph{Pkgs: make([]*Package, len(db.Packages)), Out: make([][]int, len(db.Packages))}
	byName := map[string][]int{}
	provides := map[string][]int{}
	for i := range db.Packages {
		p := &db.Packages[i]
		g.Pkgs[i] = p
		byName[p.Name] = append(byName[p.Name], i)
		for _, pr := range p.Provides {
			provides[pr.Name] = append(provides[pr.Name], i)
		}
	}
	pick := func(from *Package, cands []int) int {
		for _, c := range cands { // prefer the dependent's own architecture
			if a := g.Pkgs[c].Arch; a == from.Arch || a == "all" || a == "noarch" {
				return c
			}
		}
		return cands[0]
	}
	for i, p := range g.Pkgs {
		seen := map[int]bool{i: true}
		for _, d := range p.Depends {
			if d.Kind == Recommends && !opts.Recommends {
				continue
			}
			to := -1
			for _, r := range d.Alts {
				if c := byName[r.Name]; len(c) > 0 {
					to = pick(p, c)
				} else if c := provides[r.Name]; len(c) > 0 {
					to = pick(p, c)
				}
				if to >= 0 {
					break
				}
			}
			if to >= 0 && !seen[to] {
				seen[to] = true
				g.Out[i] = append(g.Out[i], to)
			}
		}
		sort.Ints(g.Out[i])
	}
	return g
}

// SCCs returns the strongly connected components of the graph (Tarjan's algorithm, iterative so
// that long dependency chains cannot exhaust the stack), each sorted; a component comes after
// every component it depends on.
func (g *Graph) SCCs() [][]int {
	n := len(g.Pkgs)
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack, comps = []int{}, [][]int{}
	next := 0
	type frame struct{ v, edge int }
	for s := 0; s < n; s++ {
		if index[s] >= 0 {
			continue
		}
		call := []frame{{v: s}}
		index[s], low[s] = next, next
		next++
		stack = append(stack, s)
		onStack[s] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.edge < len(g.Out[f.v]) {
				w := g.Out[f.v][f.edge]
				f.edge++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{v: w})
				} else if onStack[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				u := call[len(call)-1].v
				low[u] = min(low[u], low[v])
			}
			if low[v] == index[v] {
				var comp []int
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				sort.Ints(comp)
				comps = append(comps, comp)
			}
		}
	}
	return comps
}

// Roots returns the source components of the graph's condensation: the strongly connected
// components that no package outside them depends on. Installing one member of each (with its
// dependencies) installs everything; a cycle counts as one node, so nothing is lost to cycles.
// Each root lists its packages' indices, sorted; roots are ordered by their first package.
func (g *Graph) Roots() [][]int {
	comps := g.SCCs()
	compOf := make([]int, len(g.Pkgs))
	for ci, c := range comps {
		for _, v := range c {
			compOf[v] = ci
		}
	}
	hasIn := make([]bool, len(comps))
	for v, outs := range g.Out {
		for _, w := range outs {
			if compOf[v] != compOf[w] {
				hasIn[compOf[w]] = true
			}
		}
	}
	var roots [][]int
	for ci, c := range comps {
		if !hasIn[ci] {
			roots = append(roots, c)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i][0] < roots[j][0] })
	return roots
}

// RootNames returns the names of the packages in the graph's roots: for a root that is a cycle,
// every member is listed, so an install line names each package that nothing else pulls in.
func (g *Graph) RootNames() []string {
	var names []string
	for _, r := range g.Roots() {
		for _, v := range r {
			names = append(names, g.Pkgs[v].Name)
		}
	}
	return names
}
