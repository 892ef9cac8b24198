package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/vm2image/vm2image/internal/fixture"
)

// VM is one VM of the fleet suite (experiments/fleet.yaml).
type VM struct {
	Name     string   `yaml:"name" json:"name"`
	Suite    string   `yaml:"suite" json:"suite"`
	Profile  string   `yaml:"profile" json:"profile"`
	Packages []string `yaml:"packages" json:"packages"`
	Setup    []string `yaml:"setup" json:"-"`
	Services []string `yaml:"services" json:"services,omitempty"`
	Checks   []string `yaml:"checks" json:"checks"`
}

// Suite is the fleet: shared snippets (anchors only) and the VMs.
type Suite struct {
	Shared map[string]string `yaml:"shared"`
	VMs    []VM              `yaml:"vms"`
}

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,40}$`)
	suiteRE = regexp.MustCompile(`^(bookworm|bullseye|trixie)$`)
	pkgRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9+.@-]+$`) // packages and unit names
)

// loadSuite reads and checks the suite file; install and own are the shared scripts every VM
// runs. $FLEET_ONLY (NAME,NAME...) keeps only those VMs, in that order.
func loadSuite(path string) (*Suite, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the suite: %w", err)
	}
	var s Suite
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	if s.Shared["install"] == "" || s.Shared["own"] == "" {
		return nil, fmt.Errorf("%s: shared: wants install and own", path)
	}
	seen := map[string]bool{}
	for _, vm := range s.VMs {
		switch {
		case !nameRE.MatchString(vm.Name) || seen[vm.Name]:
			return nil, fmt.Errorf("%s: VM name %q: bad or repeated", path, vm.Name)
		case !suiteRE.MatchString(vm.Suite):
			return nil, fmt.Errorf("%s: VM %s: suite %q: want bookworm, bullseye or trixie", path, vm.Name, vm.Suite)
		case len(vm.Checks) == 0:
			return nil, fmt.Errorf("%s: VM %s: no checks", path, vm.Name)
		}
		for _, p := range append(append([]string(nil), vm.Packages...), vm.Services...) {
			if !pkgRE.MatchString(p) {
				return nil, fmt.Errorf("%s: VM %s: package %q", path, vm.Name, p)
			}
		}
		seen[vm.Name] = true
	}
	if only := os.Getenv("FLEET_ONLY"); only != "" {
		var kept []VM
		for _, name := range strings.Split(only, ",") {
			if !seen[name] {
				return nil, fmt.Errorf("FLEET_ONLY: no VM %q in %s", name, path)
			}
			for _, vm := range s.VMs {
				if vm.Name == name {
					kept = append(kept, vm)
				}
			}
		}
		s.VMs = kept
	}
	if len(s.VMs) == 0 {
		return nil, fmt.Errorf("%s: no VMs", path)
	}
	return &s, nil
}

// recipe is the VM's root: minbase, then install, the profile's setup and the VM's own data.
func (s *Suite) recipe(vm VM) fixture.Recipe {
	script := []string{fmt.Sprintf("VM=%s\nSUITE=%s\nPACKAGES=%q", vm.Name, vm.Suite, strings.Join(vm.Packages, " ")), s.Shared["install"]}
	script = append(append(script, vm.Setup...), s.Shared["own"])
	return fixture.Recipe{Suite: vm.Suite, Script: strings.Join(script, "\n")}
}

// baseRecipe is a release's base image: its minbase root.
func baseRecipe(suite string) fixture.Recipe { return fixture.Recipe{Suite: suite} }

// buildRoots builds (or finds) the bases and the VMs' roots, two at a time, and prints
// "base SUITE ROOT" and "vm NAME SUITE PROFILE ROOT -,SERVICE,..." lines (in the suite's order).
func buildRoots(s *Suite) error {
	var recipes []fixture.Recipe
	var labels, services []string
	seen := map[string]bool{}
	for _, vm := range s.VMs {
		if !seen[vm.Suite] {
			seen[vm.Suite] = true
			recipes = append(recipes, baseRecipe(vm.Suite))
			labels = append(labels, "base "+vm.Suite)
			services = append(services, "")
		}
	}
	for _, vm := range s.VMs {
		recipes = append(recipes, s.recipe(vm))
		labels = append(labels, fmt.Sprintf("vm %s %s %s", vm.Name, vm.Suite, vm.Profile))
		services = append(services, strings.Join(append([]string{"-"}, vm.Services...), ","))
	}
	roots := make([]string, len(recipes))
	errs := make([]error, len(recipes))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, r := range recipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			roots[i], errs[i] = fixture.BuildRoot(r, func(f string, a ...any) {
				fmt.Fprintf(os.Stderr, "%s: %s\n", labels[i], fmt.Sprintf(f, a...))
			})
		}()
	}
	wg.Wait()
	for i := range recipes {
		if errs[i] != nil {
			return fmt.Errorf("building %s: %w", labels[i], errs[i])
		}
		fmt.Println(strings.TrimSpace(labels[i] + " " + roots[i] + " " + services[i]))
	}
	return nil
}
