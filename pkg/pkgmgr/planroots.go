package pkgmgr

import (
	"sort"
)

// installRoots returns the indices, in order, of the install-set packages an install line must
// name so that the installer brings in all of install.
//
// The graph is the VM's own (its database, its alternatives, its Provides), restricted to the
// install set, and holds only the edges the installer is certain to follow:
//   - an edge goes to a package the base does not have at all: one the base has at another
//     version is named anyway (an installer leaves an installed package alone unless told), so
//     nothing needs to reach it;
//   - a Recommends edge counts only when the installer follows Recommends, and only out of a
//     package new to the root (on upgrades installers add only newly recommended packages);
//   - the dependency must be one the base does not already satisfy, by name or Provides, with
//     a package of a compatible architecture (or of any, when the VM has none compatible);
//   - exactly one VM package (of a compatible architecture) satisfies the dependency, through
//     any of its alternatives, so that the installer cannot choose another one. For dpkg that
//     package must also be the first alternative by its real name: apt satisfies a group of
//     alternatives with its first installable member, and picks a provider of a virtual name
//     by its own preferences.
//
// Each edge kept is one the VM graph (NewGraph) has too, so the roots reach every install-set
// package through the VM's edges. They are the source components of the graph's condensation;
// every member of a cycle is named.
func installRoots(vm, base *DB, install []Package, recommends bool) []int {
	idx := newPkgIndex(vm.Packages)
	baseIdx := newPkgIndex(base.Packages)
	node := map[int]int{} // VM index -> install index
	for i, p := range install {
		if v, ok := idx.exact[exactKey(p)]; ok {
			node[v] = i
		}
	}
	upgrade := map[int]bool{} // install index -> base has it at another version
	pairOf, _ := pairPackages(install, base.Packages, vm.Manager)
	for i := range install {
		upgrade[i] = pairOf[i] >= 0
	}
	g := &Graph{Pkgs: make([]*Package, len(install)), Out: make([][]int, len(install))}
	for i := range install {
		g.Pkgs[i] = &install[i]
	}
	for v, i := range node {
		p := &vm.Packages[v]
		seen := map[int]bool{i: true}
		for _, d := range p.Depends {
			if d.Kind == Recommends && (!recommends || upgrade[i]) {
				continue
			}
			t := idx.certainTarget(v, d, vm.Manager, baseIdx)
			w, ok := node[t]
			if t < 0 || !ok || upgrade[w] || seen[w] {
				continue
			}
			seen[w] = true
			g.Out[i] = append(g.Out[i], w)
		}
		sort.Ints(g.Out[i])
	}
	var roots []int
	for _, comp := range g.Roots() {
		roots = append(roots, comp...)
	}
	sort.Ints(roots)
	return roots
}

// pkgIndex finds packages by name, by provided name and by name, arch and version.
type pkgIndex struct {
	pkgs     []Package
	byName   map[string][]int
	provides map[string][]int
	exact    map[string]int
}

func newPkgIndex(pkgs []Package) *pkgIndex {
	x := &pkgIndex{pkgs: pkgs, byName: map[string][]int{}, provides: map[string][]int{}, exact: map[string]int{}}
	for i, p := range pkgs {
		x.byName[p.Name] = append(x.byName[p.Name], i)
		for _, r := range p.Provides {
			x.provides[r.Name] = append(x.provides[r.Name], i)
		}
		x.exact[exactKey(p)] = i
	}
	return x
}

func exactKey(p Package) string { return p.Name + "\x00" + p.Arch + "\x00" + p.Version }

// satisfies reports whether any package of the index has the name or provides it.
func (x *pkgIndex) satisfies(name string) bool {
	return len(x.byName[name]) > 0 || len(x.provides[name]) > 0
}

// satisfiesFor reports whether a package of the index has the name or provides it with an
// architecture compatible with arch, and whether one of any architecture does. A dependency
// of an i386 package on a library the base has only for amd64 is not satisfied by it: the VM
// holds the library for both, so it is Multi-Arch: same and resolves per architecture.
func (x *pkgIndex) satisfiesFor(arch, name string) (compatible, any bool) {
	for _, list := range [][]int{x.byName[name], x.provides[name]} {
		for _, c := range list {
			any = true
			if archMatch(x.pkgs[c].Arch, arch) {
				return true, true
			}
		}
	}
	return false, any
}

// pick chooses among candidates as NewGraph does: the first of the dependent's own
// architecture (or an architecture-independent one), else the first.
func (x *pkgIndex) pick(from *Package, cands []int) int {
	for _, c := range cands {
		if a := x.pkgs[c].Arch; a == from.Arch || a == "all" || a == "noarch" {
			return c
		}
	}
	return cands[0]
}

// certainTarget returns the VM package the installer is certain to install for dependency d
// of package v (see installRoots), or -1.
func (x *pkgIndex) certainTarget(v int, d Dep, m Manager, base *pkgIndex) int {
	p := &x.pkgs[v]
	if len(d.Alts) == 0 {
		return -1
	}
	for _, r := range d.Alts {
		compatible, any := base.satisfiesFor(p.Arch, r.Name)
		if vmCompatible, _ := x.satisfiesFor(p.Arch, r.Name); compatible || (any && !vmCompatible) {
			return -1
		}
	}
	first := d.Alts[0].Name
	var target int
	switch {
	case len(x.byName[first]) > 0:
		target = x.pick(p, x.byName[first])
	case m != Dpkg && len(x.provides[first]) > 0:
		target = x.pick(p, x.provides[first])
	default:
		return -1
	}
	if target == v {
		return -1
	}
	for _, c := range x.satisfiers(p, d) {
		if c != target {
			return -1
		}
	}
	return target
}

// satisfiers returns the packages that satisfy any alternative of d, by name or Provides,
// keeping those of an architecture compatible with p's when there are any.
func (x *pkgIndex) satisfiers(p *Package, d Dep) []int {
	seen := map[int]bool{}
	var all, compatible []int
	for _, r := range d.Alts {
		for _, list := range [][]int{x.byName[r.Name], x.provides[r.Name]} {
			for _, c := range list {
				if seen[c] {
					continue
				}
				seen[c] = true
				all = append(all, c)
				if archMatch(x.pkgs[c].Arch, p.Arch) {
					compatible = append(compatible, c)
				}
			}
		}
	}
	if len(compatible) > 0 {
		return compatible
	}
	return all
}
