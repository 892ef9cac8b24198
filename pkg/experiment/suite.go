package experiment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Suite is an experiment suite: sources, a matrix of settings, and how often each cell runs.
type Suite struct {
	Name        string       `yaml:"name"`
	Description string       `yaml:"description"`
	Recipes     string       `yaml:"recipes"` // file of fixture recipes, relative to the suite file
	Repeat      int          `yaml:"repeat"`
	Sources     []SourceSpec `yaml:"sources"`
	Matrix      Matrix       `yaml:"matrix"`
	Baselines   Baselines    `yaml:"baselines"`
	Options     SuiteOptions `yaml:"options"`

	path    string            // the suite file
	recipes map[string]Recipe // by name, from Recipes
}

// SourceSpec names one VM of the suite: a live or local source, or a fixture recipe to build.
type SourceSpec struct {
	Name      string `yaml:"name"`
	Source    string `yaml:"source"`     // HOST:PORT, agent://HOST:PORT, dir:PATH or tar:PATH
	TokenFile string `yaml:"token_file"` // for agents
	Fixture   string `yaml:"fixture"`    // a recipe of the suite's recipes file
	// Mode serves a fixture: dir (read in-process, default), agent (the agent on the root over
	// TCP), boot (the root booted with its services and the agent inside).
	Mode     string   `yaml:"mode"`
	Base     string   `yaml:"base"` // base image reference; fixtures default to their release's minbase
	Excludes []string `yaml:"excludes"`
}

// Matrix lists the values of each setting; every combination is a cell.
type Matrix struct {
	Strategy    []string `yaml:"strategy"`    // rsync, checksum, rdiff
	Packages    []string `yaml:"packages"`    // on, off
	Transfer    []string `yaml:"transfer"`    // diff, full
	Compression []string `yaml:"compression"` // gzip, zstd
}

// Baselines tune the baselines every suite runs: the whole VM as one layer, and the 2014
// pipeline (full compressed tar, rsync --compare-dest against base+packages, tar, image build).
type Baselines struct {
	// Build runs the 2014 pipeline's image build (docker build) in the Docker engine; default
	// true when the base is in the engine.
	Build *bool `yaml:"build"`
}

// SuiteOptions are settings shared by every conversion of the suite.
type SuiteOptions struct {
	Builder string `yaml:"builder"` // chroot (default) or docker
	// PackagesCache is the cache root of the conversions (packages layers, unpacked roots, base
	// blobs): "suite" (default: a cache of this suite's own, so each VM's first conversion with
	// packages builds its layer), "shared" (the converter's cache root), or a directory.
	PackagesCache   string `yaml:"packages_cache"`
	WorkDir         string `yaml:"work_dir"`         // scratch space (default /var/tmp/vm2image-experiment/NAME)
	WireCompression string `yaml:"wire_compression"` // zstd (default), gzip or none
	TradeoffVMs     int    `yaml:"tradeoff_vms"`     // the trade-off plot's largest fleet (default 20)
}

// Settings values.
var (
	strategies   = []string{"rsync", "checksum", "rdiff"}
	transfers    = []string{"diff", "full"}
	compressions = []string{"gzip", "zstd"}
	modes        = []string{"dir", "agent", "boot"}
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	nameFixRE    = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
	portNameRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
)

// LoadSuite reads and checks a suite file and the recipes file it names. Syntax errors, unknown
// keys and invalid values are reported with the file and the line they are on.
func LoadSuite(path string) (*Suite, error) {
	var s Suite
	doc, err := decodeStrict(path, &s)
	if err != nil {
		return nil, err
	}
	s.path = path
	if err := s.validate(doc); err != nil {
		return nil, fmt.Errorf("reading suite %s: %w", path, err)
	}
	if s.Recipes != "" {
		rp := s.Recipes
		if !filepath.IsAbs(rp) {
			rp = filepath.Join(filepath.Dir(path), rp)
		}
		if s.recipes, err = LoadRecipes(rp); err != nil {
			return nil, err
		}
	}
	for i, src := range s.Sources {
		if _, ok := s.recipes[src.Fixture]; src.Fixture != "" && !ok {
			return nil, fmt.Errorf("reading suite %s: line %d: fixture %q is not a recipe of %q",
				path, lineAt(doc, "sources", i, "fixture"), src.Fixture, s.Recipes)
		}
	}
	return &s, nil
}

// decodeStrict decodes a YAML file into v, refusing unknown keys, and returns its node tree.
func decodeStrict(path string, v any) (*yaml.Node, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading %s: the file is empty", path)
		}
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return &doc, nil
}

func (s *Suite) validate(doc *yaml.Node) error {
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(s.path), filepath.Ext(s.path))
	}
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("line %d: name %q: use letters, digits, '.', '_' and '-'", lineAt(doc, "name"), s.Name)
	}
	if s.Repeat < 0 {
		return fmt.Errorf("line %d: repeat must be 1 or more", lineAt(doc, "repeat"))
	}
	if len(s.Sources) == 0 {
		return fmt.Errorf("line %d: the suite names no sources", lineAt(doc))
	}
	seen := map[string]bool{}
	for i := range s.Sources {
		if err := s.Sources[i].validate(doc, i, seen); err != nil {
			return err
		}
	}
	if err := s.Matrix.validate(doc); err != nil {
		return err
	}
	o := &s.Options
	checks := []struct {
		key, val string
		allowed  []string
	}{
		{"builder", o.Builder, []string{"chroot", "docker"}},
		{"wire_compression", o.WireCompression, []string{"zstd", "gzip", "none"}},
	}
	for _, c := range checks {
		if c.val != "" && !contains(c.allowed, c.val) {
			return fmt.Errorf("line %d: options: %s %q: want %s", lineAt(doc, "options", c.key), c.key, c.val, strings.Join(c.allowed, ", "))
		}
	}
	if o.TradeoffVMs < 0 || o.TradeoffVMs > 1000 {
		return fmt.Errorf("line %d: options: tradeoff_vms must be between 1 and 1000", lineAt(doc, "options", "tradeoff_vms"))
	}
	return nil
}

func (src *SourceSpec) validate(doc *yaml.Node, i int, seen map[string]bool) error {
	line := func(key string) int { return lineAt(doc, "sources", i, key) }
	if src.Name == "" {
		src.Name = defaultName(src)
	}
	if !nameRE.MatchString(src.Name) {
		return fmt.Errorf("line %d: source %d: name %q: use letters, digits, '.', '_' and '-'", line("name"), i+1, src.Name)
	}
	if seen[src.Name] {
		return fmt.Errorf("line %d: source %q is named twice", line("name"), src.Name)
	}
	seen[src.Name] = true
	switch {
	case (src.Source == "") == (src.Fixture == ""):
		return fmt.Errorf("line %d: source %q: give either source (HOST:PORT, dir:PATH, tar:PATH) or fixture", line(""), src.Name)
	case src.Source != "" && src.Mode != "":
		return fmt.Errorf("line %d: source %q: mode applies to fixtures only", line("mode"), src.Name)
	case src.Mode != "" && !contains(modes, src.Mode):
		return fmt.Errorf("line %d: source %q: mode %q: want dir, agent or boot", line("mode"), src.Name, src.Mode)
	}
	if src.Fixture != "" && src.Mode == "" {
		src.Mode = "dir"
	}
	return nil
}

func (m *Matrix) validate(doc *yaml.Node) error {
	axes := []struct {
		key     string
		vals    *[]string
		allowed []string
		def     string
	}{
		{"strategy", &m.Strategy, strategies, "checksum"},
		{"packages", &m.Packages, []string{"on", "off"}, "on"},
		{"transfer", &m.Transfer, transfers, "diff"},
		{"compression", &m.Compression, compressions, "gzip"},
	}
	for _, a := range axes {
		if len(*a.vals) == 0 {
			*a.vals = []string{a.def}
		}
		seen := map[string]bool{}
		for j, v := range *a.vals {
			if a.key == "packages" {
				v = onOff(v)
				(*a.vals)[j] = v
			}
			if !contains(a.allowed, v) {
				return fmt.Errorf("line %d: matrix: %s %q: want %s", lineAt(doc, "matrix", a.key, j), a.key, v, strings.Join(a.allowed, ", "))
			}
			if seen[v] {
				return fmt.Errorf("line %d: matrix: %s %q is listed twice", lineAt(doc, "matrix", a.key, j), a.key, v)
			}
			seen[v] = true
		}
	}
	return nil
}

// defaultName names a source after its fixture, or the last element of its path or address.
func defaultName(src *SourceSpec) string {
	if src.Fixture != "" {
		return src.Fixture
	}
	s := src.Source
	if i := strings.Index(s, ":"); i >= 0 && (strings.HasPrefix(s, "dir:") || strings.HasPrefix(s, "tar:")) {
		s = filepath.Base(s[i+1:])
	}
	s = strings.TrimPrefix(s, "agent://")
	return strings.Trim(nameFixRE.ReplaceAllString(s, "-"), "-.")
}

// onOff maps YAML's spellings of booleans to on and off.
func onOff(v string) string {
	switch strings.ToLower(v) {
	case "on", "true", "yes":
		return "on"
	case "off", "false", "no":
		return "off"
	}
	return v
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// lineAt returns the line of the node at path (mapping keys and sequence indexes) in doc, or of
// the deepest node of the path that exists. An empty key names the node itself.
func lineAt(doc *yaml.Node, path ...any) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		next := child(n, p)
		if next == nil {
			break
		}
		n = next
	}
	return n.Line
}

func child(n *yaml.Node, p any) *yaml.Node {
	switch k := p.(type) {
	case string:
		if n.Kind != yaml.MappingNode || k == "" {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				return n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && k < len(n.Content) {
			return n.Content[k]
		}
	}
	return nil
}
