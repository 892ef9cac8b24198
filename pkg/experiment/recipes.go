package experiment

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vm2image/vm2image/internal/fixture"
)

// Recipe is a fixture VM built from Debian's packages: debootstrap of a release, then scripts
// run inside the root (chroot, /proc mounted), cached by their contents. Start runs inside
// the root when the fixture is booted: it starts the services; PORT_NAME variables hold the
// free ports chosen for Ports.
type Recipe struct {
	Profile  string   `yaml:"profile"` // what the VM is, for the tables
	Suite    string   `yaml:"suite"`   // bookworm, bullseye, trixie, ...
	Variant  string   `yaml:"variant"` // debootstrap variant (default minbase)
	Mirror   string   `yaml:"mirror"`
	Packages []string `yaml:"packages"` // debootstrap --include
	Scripts  []string `yaml:"scripts"`  // run in order with /bin/sh -e
	Start    string   `yaml:"start"`
	Ports    []string `yaml:"ports"`
	Hostname string   `yaml:"hostname"`
}

// recipeFile is the layout of a recipes file. Shared holds YAML anchors that recipes reuse
// (scripts, package lists); it is not read otherwise.
type recipeFile struct {
	Shared  map[string]any    `yaml:"shared"`
	Recipes map[string]Recipe `yaml:"recipes"`
}

// LoadRecipes reads a recipes file. Unknown keys and invalid values are reported with the
// line they are on.
func LoadRecipes(path string) (map[string]Recipe, error) {
	var f recipeFile
	doc, err := decodeStrict(path, &f)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(f.Recipes))
	for n := range f.Recipes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := f.Recipes[n]
		line := func(key string) int { return lineAt(doc, "recipes", n, key) }
		switch {
		case !nameRE.MatchString(n):
			return nil, fmt.Errorf("reading recipes %s: line %d: recipe name %q: use letters, digits, '.', '_' and '-'", path, line(""), n)
		case !nameRE.MatchString(r.Suite):
			return nil, fmt.Errorf("reading recipes %s: line %d: recipe %q: suite %q is not a release name", path, line("suite"), n, r.Suite)
		}
		for i, p := range r.Ports {
			if !portNameRE.MatchString(p) {
				return nil, fmt.Errorf("reading recipes %s: line %d: recipe %q: port name %q: use letters, digits and '_'", path, lineAt(doc, "recipes", n, "ports", i), n, p)
			}
		}
	}
	return f.Recipes, nil
}

// root is the testenv recipe that builds the fixture's root.
func (r Recipe) root() fixture.Recipe {
	script := strings.Join(r.Scripts, "\n")
	if r.Hostname != "" {
		script = fmt.Sprintf("echo %s > /etc/hostname\n%s", shellQuote(r.Hostname), script)
	}
	return fixture.Recipe{Suite: r.Suite, Variant: r.Variant, Packages: r.Packages, Script: script, Mirror: r.Mirror}
}

// base is the recipe of the fixture's base image: a minbase root of the same release.
func (r Recipe) base() fixture.Recipe {
	return fixture.Recipe{Suite: r.Suite, Mirror: r.Mirror}
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
