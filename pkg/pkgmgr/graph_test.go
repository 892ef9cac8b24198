package pkgmgr

import (
	"sort"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// gpkg builds a package from "name" and dependency groups written "a|b" (alternatives);
// a leading "?" marks a Recommends group.
func gpkg(name string, deps []string, provides ...string) Package {
	p := Package{Name: name, Version: "1", Arch: "amd64"}
	for _, d := range deps {
		kind := Depends
		if d[0] == '?' {
			kind, d = Recommends, d[1:]
		}
		var alts []Relation
		for _, a := range splitBar(d) {
			alts = append(alts, Relation{Name: a})
		}
		p.Depends = append(p.Depends, Dep{Kind: kind, Alts: alts})
	}
	for _, pr := range provides {
		p.Provides = append(p.Provides, Relation{Name: pr})
	}
	return p
}

func splitBar(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '|' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func TestGraphRoots(t *testing.T) {
	tests := []struct {
		name       string
		pkgs       []Package
		recommends bool
		want       []string
	}{
		{"chain", []Package{gpkg("a", []string{"b"}), gpkg("b", []string{"c"}), gpkg("c", nil)}, false, []string{"a"}},
		{"self-loop is harmless", []Package{gpkg("a", []string{"a", "b"}), gpkg("b", nil)}, false, []string{"a"}},
		{"two-cycle with no dependents is one root, both listed",
			[]Package{gpkg("a", []string{"b"}), gpkg("b", []string{"a"}), gpkg("c", nil)}, false, []string{"a", "b", "c"}},
		{"package whose only dependents are in a cycle is not a root",
			[]Package{gpkg("x", []string{"y"}), gpkg("y", []string{"x", "z"}), gpkg("z", nil)}, false, []string{"x", "y"}},
		{"cycle depended on from outside is not a root",
			[]Package{gpkg("app", []string{"x"}), gpkg("x", []string{"y"}), gpkg("y", []string{"x"})}, false, []string{"app"}},
		{"alternatives resolve to the installed member only",
			[]Package{gpkg("mta-user", []string{"exim4|postfix"}), gpkg("postfix", nil), gpkg("other", nil)}, false, []string{"mta-user", "other"}},
		{"virtual package through Provides",
			[]Package{gpkg("web", []string{"httpd"}), gpkg("nginx", nil, "httpd")}, false, []string{"web"}},
		{"recommended-only packages stay roots when recommends are not followed",
			[]Package{gpkg("ubuntu-minimal", []string{"?language-pack-en"}), gpkg("language-pack-en", []string{"language-pack-en-base"}), gpkg("language-pack-en-base", nil)},
			false, []string{"language-pack-en", "ubuntu-minimal"}},
		{"recommended-only packages are covered when recommends are followed",
			[]Package{gpkg("ubuntu-minimal", []string{"?language-pack-en"}), gpkg("language-pack-en", []string{"language-pack-en-base"}), gpkg("language-pack-en-base", nil)},
			true, []string{"ubuntu-minimal"}},
		{"unsatisfied dependency makes no edge", []Package{gpkg("a", []string{"missing"})}, false, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGraph(&DB{Packages: tt.pkgs}, GraphOptions{Recommends: tt.recommends})
			got := g.RootNames()
			sort.Strings(got)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("roots (-want +got):\n%s", d)
			}
			// Property: everything is reachable from the roots.
			if n := reachable(g); n != len(tt.pkgs) {
				t.Errorf("roots reach %d of %d packages", n, len(tt.pkgs))
			}
		})
	}
}

func reachable(g *Graph) int {
	seen := map[int]bool{}
	var stack []int
	for _, r := range g.Roots() {
		stack = append(stack, r...)
	}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[v] {
			continue
		}
		seen[v] = true
		stack = append(stack, g.Out[v]...)
	}
	return len(seen)
}

func TestGraphLongChain(t *testing.T) {
	// Deep enough to break a recursive Tarjan on a small stack, with a cycle at the end.
	const n = 200000
	pkgs := make([]Package, n)
	for i := range pkgs {
		next := (i + 1) % n
		pkgs[i] = gpkg(name(i), []string{name(next)})
	}
	pkgs = append(pkgs, gpkg("top", []string{name(0)}))
	g := NewGraph(&DB{Packages: pkgs}, GraphOptions{})
	if got := g.RootNames(); len(got) != 1 || got[0] != "top" {
		t.Fatalf("roots = %v, want [top]", got)
	}
	if len(g.SCCs()) != 2 {
		t.Fatalf("want 2 components (the ring and top), got %d", len(g.SCCs()))
	}
}

func name(i int) string { return "p" + strconv.Itoa(i) }
