package experiment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodRecipes = `recipes:
  web:
    suite: bookworm
    scripts: ["true"]
`

// TestLoadSuiteErrors checks that every malformed suite gets a message naming its line.
func TestLoadSuiteErrors(t *testing.T) {
	cases := []struct {
		name, suite, want string
	}{
		{"syntax", "name: x\nsources:\n  - source: dir:/x\n\tbase: a\n", "yaml: line 3: found a tab character"},
		{"bad mapping", "name: x\nsources: a: b\n", "yaml: line 2: mapping values are not allowed"},
		{"unknown key", "name: x\nsources:\n  - source: dir:/x\nmatrixx:\n  strategy: [rsync]\n", "line 4: field matrixx not found"},
		{"unknown source key", "sources:\n  - source: dir:/x\n    tokenfile: t\n", "line 3: field tokenfile not found"},
		{"bad strategy", "sources:\n  - source: dir:/x\nmatrix:\n  strategy:\n    - rsync\n    - fast\n", `line 6: matrix: strategy "fast"`},
		{"bad packages", "sources:\n  - source: dir:/x\nmatrix:\n  packages: [maybe]\n", `line 4: matrix: packages "maybe"`},
		{"twice", "sources:\n  - source: dir:/x\nmatrix:\n  compression: [gzip, gzip]\n", "listed twice"},
		{"no sources", "name: x\n", "line 1: the suite names no sources"},
		{"both", "sources:\n  - name: a\n    source: dir:/x\n    fixture: web\n", "line 2: source \"a\": give either"},
		{"mode on source", "sources:\n  - source: dir:/x\n    name: a\n    mode: boot\n", "line 4: source \"a\": mode applies to fixtures only"},
		{"bad mode", "recipes: r.yaml\nsources:\n  - fixture: web\n    mode: fly\n", `line 4: source "web": mode "fly"`},
		{"unknown fixture", "recipes: r.yaml\nsources:\n  - fixture: mail\n", `line 3: fixture "mail" is not a recipe`},
		{"same name", "sources:\n  - {name: a, source: dir:/x}\n  - {name: a, source: dir:/y}\n", `line 3: source "a" is named twice`},
		{"bad option", "sources:\n  - source: dir:/x\noptions:\n  builder: podman\n", `line 4: options: builder "podman"`},
		{"wrong type", "repeat: many\nsources:\n  - source: dir:/x\n", "line 1: cannot unmarshal"},
		{"empty", "", "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTestFile(t, dir, "r.yaml", goodRecipes)
			p := writeTestFile(t, dir, "suite.yaml", c.suite)
			_, err := LoadSuite(p)
			if err == nil {
				t.Fatalf("no error for\n%s", c.suite)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "suite.yaml") {
				t.Errorf("error %q: want it to name suite.yaml and contain %q", err, c.want)
			}
		})
	}
}

func TestLoadRecipesErrors(t *testing.T) {
	cases := []struct{ recipes, want string }{
		{"recipes:\n  web:\n    suite: bookworm\n    packagez: [x]\n", "line 4: field packagez not found"},
		{"recipes:\n  web:\n    suite: book worm\n", `line 3: recipe "web": suite "book worm"`},
		{"recipes:\n  web:\n    suite: bookworm\n    ports: [http, 80]\n", `line 4: recipe "web": port name "80"`},
	}
	for _, c := range cases {
		p := writeTestFile(t, t.TempDir(), "r.yaml", c.recipes)
		_, err := LoadRecipes(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadRecipes(%q) = %v, want an error containing %q", c.recipes, err, c.want)
		}
	}
}

// TestCheckedInSuites loads every suite of experiments/ with its recipes.
func TestCheckedInSuites(t *testing.T) {
	paths, _ := filepath.Glob("../../experiments/*.yaml")
	n := 0
	for _, p := range paths {
		if filepath.Base(p) == "recipes.yaml" {
			if _, err := LoadRecipes(p); err != nil {
				t.Error(err)
			}
			continue
		}
		if filepath.Base(p) == "fleet.yaml" {
			continue // the fleet experiment's suite: experiments/fleet's TestSuiteShape reads it
		}
		s, err := LoadSuite(p)
		if err != nil {
			t.Error(err)
			continue
		}
		n++
		if len(s.Cells()) == 0 {
			t.Errorf("%s: no cells", p)
		}
	}
	if n == 0 {
		t.Error("no suites in experiments/")
	}
}

func TestCells(t *testing.T) {
	dir := t.TempDir()
	p := writeTestFile(t, dir, "s.yaml", `sources: [{name: a, source: "dir:/x"}, {name: b, source: "dir:/y"}]
matrix: {strategy: [rsync, checksum], packages: ["off", "on"], compression: [gzip, zstd]}
`)
	s, err := LoadSuite(p)
	if err != nil {
		t.Fatal(err)
	}
	cells := s.Cells()
	// per source: 2 strategies x 2 packages x 1 transfer x 2 compressions, 2 one-layer, 2 pipelines
	if len(cells) != 2*(8+2+2) {
		t.Fatalf("%d cells, want 24", len(cells))
	}
	ids := map[string]bool{}
	for _, c := range cells {
		if ids[c.ID] {
			t.Errorf("cell id %s twice", c.ID)
		}
		ids[c.ID] = true
	}
	if c := cells[0]; c.ID != "a.convert.rsync.pkgs.diff.gzip" || c.Label(s.Matrix.varying()) != "vm2image rsync, packages, gzip" {
		t.Errorf("first cell %+v label %q", c, c.Label(s.Matrix.varying()))
	}
}
