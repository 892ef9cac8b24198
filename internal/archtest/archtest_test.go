package archtest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/vm2image/vm2image/"

// rule forbids pkg to depend, directly or not, on any of forbidden.
type rule struct {
	pkg       string
	forbidden []string
	why       string
}

var rules = []rule{
	{"pkg/diff", []string{"pkg/agent"}, "the converter side takes wire types from pkg/wire, not the agent server"},
	{"pkg/layer", []string{"pkg/agent"}, "the converter side takes wire types from pkg/wire, not the agent server"},
	{"pkg/convert", []string{"pkg/agent"}, "the converter side takes wire types from pkg/wire, not the agent server"},
	{"pkg/verify", []string{"pkg/agent", "pkg/convert"}, "verify reads labels from pkg/image, wire types from pkg/wire"},
	{"pkg/source", []string{"pkg/agent"}, "the remote client decodes with pkg/wire and internal/wirecompress"},
	{"pkg/experiment", []string{"pkg/agent"}, "the converter side takes wire types from pkg/wire, not the agent server"},
	{"pkg/builder", []string{"pkg/agent"}, "the converter side takes wire types from pkg/wire, not the agent server"},
	{"pkg/wire", []string{"pkg/agent", "pkg/vmread", "pkg/proto", "pkg/source"}, "the wire types are a vocabulary, imported by both sides"},
	{"pkg/vmread", []string{"pkg/agent", "pkg/source"}, "the reader of a root serves both sides and knows neither"},
}

// wireAllowed is everything pkg/wire may import outside the standard library: the types its
// answers embed.
var wireAllowed = map[string]bool{"pkg/delta": true, "pkg/fswalk": true, "pkg/pkgmgr": true}

type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
}

// list runs go list -deps over the repository's packages, as the build sees them (no tests).
func list(t *testing.T) map[string]listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "../../...")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.String())
	}
	pkgs := map[string]listed{}
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decoding go list: %v", err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	pkgs := list(t)
	for _, r := range rules {
		p, ok := pkgs[r.pkg]
		if !ok {
			t.Errorf("%s: not found by go list (rename the rule with the package)", r.pkg)
			continue
		}
		for _, d := range p.Deps {
			for _, f := range r.forbidden {
				if d == module+f {
					t.Errorf("%s depends on %s: %s", r.pkg, f, r.why)
				}
			}
		}
	}
}

func TestWireImportsOnlyTypes(t *testing.T) {
	p, ok := list(t)["pkg/wire"]
	if !ok {
		t.Fatal("pkg/wire not found by go list")
	}
	for _, imp := range p.Imports {
		if rel, ours := strings.CutPrefix(imp, module); ours && !wireAllowed[rel] {
			t.Errorf("pkg/wire imports %s: it holds types only, imported by both sides of the protocol", rel)
		}
	}
}
