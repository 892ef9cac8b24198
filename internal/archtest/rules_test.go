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

// agentImportExceptions import the agent's server package today for its wire types
// (TreeArgs, Info, TreeResult, ProcessArgs, the compression names). Issue 12 item 4 moves those
// types to a types-only package; then each entry goes, and the rule holds for all. An entry
// that no longer imports pkg/agent fails the test too, so the list only shrinks.
var agentImportExceptions = []string{"pkg/convert", "pkg/diff", "pkg/experiment", "pkg/layer", "pkg/verify"}

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
	g := plant(module+"pkg/cache", "fmt")
	g[module+"pkg/layer"] = slices.DeleteFunc(slices.Clone(g[module+"pkg/layer"]), func(s string) bool { return s == module+"pkg/agent" })
	if got := converterRule(g); !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "pkg/layer no longer imports") }) {
		t.Errorf("stale exception not reported: %q", got)
	}
}
