package archtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The rules of docs/architecture.md ("Import rules"). Each returns the violations it finds in g.

// agentSide are the binaries and packages that run on the VM.
var agentSide = []string{module + "cmd/agent", module + "pkg/agent"}

// agentForbidden may not be linked by agentSide, directly or not: the conversion pipeline, the
// image model and the Docker client (the agent stays small, static and read-only).
var agentForbidden = []string{module + "pkg/image", module + "pkg/builder", module + "pkg/convert",
	"github.com/moby/moby/client", "github.com/docker/docker/client", "github.com/google/go-containerregistry/pkg/v1"}

func agentRule(g graph) []string {
	var v []string
	for _, a := range agentSide {
		deps := g.deps(a)
		for _, f := range agentForbidden {
			if slices.Contains(deps, f) {
				v = append(v, fmt.Sprintf("%s links %s: %s", short(a), short(f), strings.Join(g.chain(a, f), " -> ")))
			}
		}
	}
	return v
}

// protoRule: the protocol knows no pipeline: it links no other package of the module.
func protoRule(g graph) []string {
	var v []string
	for _, d := range g.deps(module + "pkg/proto") {
		if own(d) && d != module+"pkg/proto" {
			v = append(v, fmt.Sprintf("pkg/proto links %s: %s", short(d), strings.Join(g.chain(module+"pkg/proto", d), " -> ")))
		}
	}
	return v
}

// libraryRule: diff and pkgmgr are libraries: neither links the pipeline.
func libraryRule(g graph) []string {
	var v []string
	for _, lib := range []string{"pkg/diff", "pkg/pkgmgr"} {
		if c := g.chain(module+lib, module+"pkg/convert"); c != nil {
			v = append(v, fmt.Sprintf("%s links pkg/convert: %s", lib, strings.Join(c, " -> ")))
		}
	}
	return v
}

// noExecRule: pkgmgr runs nothing: neither it nor any package of the module it links imports
// os/exec. (Its SQLite reader, modernc.org/libc, links os/exec; pkgmgr's code never starts a
// process, and that is what this checks.)
func noExecRule(g graph) []string {
	var v []string
	for _, d := range g.deps(module + "pkg/pkgmgr") {
		if own(d) && slices.Contains(g[d], "os/exec") {
			v = append(v, fmt.Sprintf("%s (linked by pkg/pkgmgr) imports os/exec", short(d)))
		}
	}
	return v
}

// converterSide are the packages that only run on the converter's host.
var converterSide = []string{"pkg/builder", "pkg/cache", "pkg/convert", "pkg/diff", "pkg/experiment",
	"pkg/image", "pkg/layer", "pkg/services", "pkg/verify"}

// agentImportExceptions would list converter-side packages allowed to import the agent's server
// package. Empty since the wire types moved to pkg/wire (issue 12 item 4); an entry that no
// longer imports pkg/agent fails the test too, so the list can only shrink.
var agentImportExceptions = []string{}

// typeRules: who may import what around the protocol's vocabulary (direct imports).
var typeRules = []struct {
	pkg       string
	forbidden []string
	why       string
}{
	{"pkg/source", []string{"pkg/agent"}, "the remote client decodes with pkg/wire and internal/wirecompress"},
	{"pkg/verify", []string{"pkg/agent", "pkg/convert"}, "verify reads labels from pkg/image, wire types from pkg/wire"},
	{"pkg/wire", []string{"pkg/agent", "pkg/vmread", "pkg/proto", "pkg/source"}, "the wire types are a vocabulary, imported by both sides"},
	{"pkg/vmread", []string{"pkg/agent", "pkg/source"}, "the reader of a root serves both sides and knows neither"},
}

// wireAllowed is everything pkg/wire may import from the module: the types its answers embed.
var wireAllowed = []string{"pkg/delta", "pkg/fswalk", "pkg/pkgmgr"}

// typesRule checks typeRules, and that pkg/wire holds types only.
func typesRule(g graph) []string {
	var v []string
	for _, r := range typeRules {
		for _, f := range r.forbidden {
			if slices.Contains(g[module+r.pkg], module+f) {
				v = append(v, fmt.Sprintf("%s imports %s: %s", r.pkg, f, r.why))
			}
		}
	}
	for _, imp := range g[module+"pkg/wire"] {
		if own(imp) && !slices.Contains(wireAllowed, short(imp)) {
			v = append(v, fmt.Sprintf("pkg/wire imports %s: it holds types only", short(imp)))
		}
	}
	return v
}

// converterRule: converter-side packages do not import pkg/agent, but for the known exceptions.
func converterRule(g graph) []string {
	var v []string
	for _, p := range converterSide {
		imports := slices.Contains(g[module+p], module+"pkg/agent")
		known := slices.Contains(agentImportExceptions, p)
		switch {
		case imports && !known:
			v = append(v, fmt.Sprintf("%s imports pkg/agent: import the wire types, not the agent's server (issue 12 item 4)", p))
		case !imports && known:
			v = append(v, fmt.Sprintf("%s no longer imports pkg/agent: take it off agentImportExceptions", p))
		}
	}
	return v
}

var rules = []struct {
	name  string
	check func(graph) []string
}{
	{"the agent links no pipeline, image model or Docker client", agentRule},
	{"proto knows no pipeline", protoRule},
	{"diff and pkgmgr never import convert", libraryRule},
	{"pkgmgr runs nothing", noExecRule},
	{"converter-side packages do not import pkg/agent", converterRule},
	{"wire types and the root reader sit between both sides", typesRule},
}

// TestImportRules checks the module's import graph against every rule.
func TestImportRules(t *testing.T) {
	g := loadGraph(t)
	for _, p := range append(append([]string{}, agentSide...), module+"pkg/proto", module+"pkg/pkgmgr", module+"pkg/diff") {
		if _, ok := g[p]; !ok {
			t.Fatalf("%s is not in go list's answer: a rule names a package that moved", short(p))
		}
	}
	for _, r := range rules {
		for _, v := range r.check(g) {
			t.Errorf("%s: %s", r.name, v)
		}
	}
}

// TestRulesCatch: each rule reports a violation planted in a copy of the real graph (so a
// rule that cannot fail is caught), and names the path that breaks it.
func TestRulesCatch(t *testing.T) {
	real := loadGraph(t)
	plant := func(from, to string) graph {
		g := graph{}
		for k, v := range real {
			g[k] = slices.Clone(v)
		}
		g[from] = append(g[from], to)
		return g
	}
	for _, tc := range []struct {
		rule     func(graph) []string
		from, to string
		want     string
	}{
		{agentRule, module + "pkg/fswalk", module + "pkg/image", "cmd/agent links pkg/image: cmd/agent -> pkg/agent -> pkg/fswalk -> pkg/image"},
		{agentRule, module + "pkg/procs", "github.com/moby/moby/client", "pkg/agent links github.com/moby/moby/client"},
		{protoRule, module + "pkg/proto", module + "pkg/fsmeta", "pkg/proto links pkg/fsmeta"},
		{libraryRule, module + "pkg/delta", module + "pkg/convert", "pkg/diff links pkg/convert: pkg/diff -> pkg/delta -> pkg/convert"},
		{noExecRule, module + "pkg/pkgmgr", "os/exec", "pkg/pkgmgr (linked by pkg/pkgmgr) imports os/exec"},
		{converterRule, module + "pkg/image", module + "pkg/agent", "pkg/image imports pkg/agent"},
	} {
		got := tc.rule(plant(tc.from, tc.to))
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, tc.want) }) {
			t.Errorf("%s -> %s planted: violations %q, want one starting %q", short(tc.from), short(tc.to), got, tc.want)
		}
	}
	// An exception that no longer holds is reported too.
	saved := agentImportExceptions
	agentImportExceptions = []string{"pkg/layer"}
	defer func() { agentImportExceptions = saved }()
	if got := converterRule(real); !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "pkg/layer no longer imports") }) {
		t.Errorf("stale exception not reported: %q", got)
	}
	// The type rules catch a planted import.
	if got := typesRule(plant(module+"pkg/wire", module+"pkg/proto")); len(got) == 0 {
		t.Error("pkg/wire -> pkg/proto planted: not reported")
	}
}
