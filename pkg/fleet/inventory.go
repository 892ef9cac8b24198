package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"
)

// VM is one VM of the inventory, or the defaults every VM starts from.
type VM struct {
	Name        string   `yaml:"name" json:"name"`
	Source      string   `yaml:"source" json:"source"` // HOST[:PORT], dir:PATH, tar:PATH, ...
	TokenFile   string   `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	Fingerprint string   `yaml:"fingerprint,omitempty" json:"fingerprint,omitempty"`
	Tag         string   `yaml:"tag,omitempty" json:"tag,omitempty"` // the image reference (default: PUSH:NAME)
	Base        string   `yaml:"base,omitempty" json:"base,omitempty"`
	NoPackages  *bool    `yaml:"no_packages,omitempty" json:"no_packages,omitempty"`
	Excludes    []string `yaml:"excludes,omitempty" json:"excludes,omitempty"`
	Services    []string `yaml:"services,omitempty" json:"services,omitempty"`
	SkipService []string `yaml:"skip_services,omitempty" json:"skip_services,omitempty"`
	// CacheRepo is a registry repository shared as a layer cache (REGISTRY/REPO; --cache-repo).
	CacheRepo string `yaml:"cache_repo,omitempty" json:"cache_repo,omitempty"`
	// Line is where the VM stands in the inventory file.
	Line int `yaml:"-" json:"line,omitempty"`
}

// Inventory is a fleet: defaults and the VMs.
type Inventory struct {
	Defaults VM   `yaml:"defaults"`
	VMs      []VM `yaml:"vms"`
	path     string
}

// ErrInventory marks an inventory that cannot be used; the message names the file and line.
var ErrInventory = errors.New("bad inventory")

// nameRE: a VM's name is a file name in the state directory and the tag of its image.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Load reads and checks an inventory file. checkSource, when set, checks each VM's source the
// way the command line checks a SOURCE argument.
func Load(path string, checkSource func(string) error) (*Inventory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the inventory: %w", err)
	}
	return Parse(path, b, checkSource)
}

// Parse decodes an inventory strictly (an unknown key is an error) and checks it; every error
// names path and the line.
func Parse(path string, b []byte, checkSource func(string) error) (*Inventory, error) {
	inv := &Inventory{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(inv); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s: empty: want defaults: and vms:", ErrInventory, path)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrInventory, path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInventory, path, err)
	}
	if d := mappingValue(&doc, "defaults"); d != nil {
		inv.Defaults.Line = d.Line
	}
	if vms := mappingValue(&doc, "vms"); vms != nil && vms.Kind == yaml.SequenceNode {
		for i, n := range vms.Content {
			if i < len(inv.VMs) {
				inv.VMs[i].Line = n.Line
			}
		}
	}
	if err := inv.check(checkSource); err != nil {
		return nil, err
	}
	return inv, nil
}

func (inv *Inventory) check(checkSource func(string) error) error {
	errf := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: %s", ErrInventory, inv.path, line, fmt.Sprintf(format, args...))
	}
	if inv.Defaults.Name != "" || inv.Defaults.Source != "" || inv.Defaults.Tag != "" {
		return errf(1, "defaults: name, source and tag belong to each VM")
	}
	if len(inv.VMs) == 0 {
		return errf(1, "no VMs: want a vms: list")
	}
	if err := checkCacheRepo(inv.Defaults.CacheRepo); err != nil {
		return errf(inv.Defaults.Line, "defaults: %v", err)
	}
	seen := map[string]int{}
	for _, vm := range inv.VMs {
		switch {
		case vm.Name == "":
			return errf(vm.Line, "a VM without a name")
		case !nameRE.MatchString(vm.Name):
			return errf(vm.Line, "VM name %q: want lower-case letters, digits, '.', '_' and '-' (it names files and tags)", vm.Name)
		case strings.HasSuffix(vm.Name, ".report"):
			// NAME.report.json is VM NAME's report in the state directory.
			return errf(vm.Line, "VM name %q: a name may not end in .report (NAME.report.json is a VM's report)", vm.Name)
		case seen[vm.Name] != 0:
			return errf(vm.Line, "VM %q again (first at line %d)", vm.Name, seen[vm.Name])
		case vm.Source == "":
			return errf(vm.Line, "VM %q has no source", vm.Name)
		}
		if err := checkCacheRepo(vm.CacheRepo); err != nil {
			return errf(vm.Line, "VM %q: %v", vm.Name, err)
		}
		seen[vm.Name] = vm.Line
		if checkSource != nil {
			if err := checkSource(vm.Source); err != nil {
				return errf(vm.Line, "VM %q: %v", vm.Name, err)
			}
		}
	}
	return nil
}

// Only returns the inventory reduced to its VM at index i (0-based, in the file's order): the
// share of one worker of an Indexed Job.
func (inv *Inventory) Only(i int) (*Inventory, error) {
	if i < 0 || i >= len(inv.VMs) {
		return nil, fmt.Errorf("%w: %s: index %d: the inventory has VMs 0 to %d", ErrInventory, inv.path, i, len(inv.VMs)-1)
	}
	out := *inv
	out.VMs = []VM{inv.VMs[i]}
	return &out, nil
}

// Resolved returns the inventory's VMs with the defaults filled in where a VM says nothing;
// lists are added to the defaults' lists.
func (inv *Inventory) Resolved() []VM {
	out := make([]VM, 0, len(inv.VMs))
	d := inv.Defaults
	for _, vm := range inv.VMs {
		r := vm
		r.Source = inv.absSource(vm.Source)
		r.TokenFile = inv.absPath(or(vm.TokenFile, d.TokenFile))
		r.Fingerprint = or(vm.Fingerprint, d.Fingerprint)
		r.Base = or(vm.Base, d.Base)
		r.CacheRepo = or(vm.CacheRepo, d.CacheRepo)
		if r.NoPackages == nil {
			r.NoPackages = d.NoPackages
		}
		r.Excludes = append(append([]string(nil), d.Excludes...), vm.Excludes...)
		r.Services = append(append([]string(nil), d.Services...), vm.Services...)
		r.SkipService = append(append([]string(nil), d.SkipService...), vm.SkipService...)
		out = append(out, r)
	}
	return out
}

// absPath makes a relative path relative to the inventory's directory, where its author wrote
// it from.
func (inv *Inventory) absPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(inv.path), p)
}

// absSource does the same for the path of a dir:, tar: or disk: source; HOST:PORT is left alone.
func (inv *Inventory) absSource(spec string) string {
	for _, k := range []string{"dir:", "tar:", "disk:"} {
		if rest, ok := strings.CutPrefix(spec, k); ok {
			return k + inv.absPath(rest)
		}
	}
	return spec
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func mappingValue(doc *yaml.Node, key string) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// checkCacheRepo checks a cache_repo: a repository with its registry (REGISTRY/REPO).
func checkCacheRepo(s string) error {
	if s == "" {
		return nil
	}
	if strings.Contains(s, "@") || !strings.Contains(s, "/") {
		return fmt.Errorf("cache_repo %q: want REGISTRY/REPO", s)
	}
	if _, err := name.NewRepository(s, name.StrictValidation); err != nil {
		return fmt.Errorf("cache_repo %q: want REGISTRY/REPO: %v", s, err)
	}
	return nil
}
