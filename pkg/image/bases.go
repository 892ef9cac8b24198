package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// BaseTable maps a distribution, as os-release names it, to a base image reference. Keys are
// "ID:VERSION_ID" ("debian:12"), "ID:MAJOR" or "ID:MAJOR.MINOR" ("rocky:9", "alpine:3.19") and
// "ID" alone as the fallback. Values may hold the placeholders {VERSION_ID}, {MAJOR} and {MINOR},
// filled from the VM's VERSION_ID: "ubuntu" -> "ubuntu:{VERSION_ID}".
type BaseTable map[string]string

// DefaultBases returns the built-in table: Docker Hub names of the official images.
func DefaultBases() BaseTable {
	return BaseTable{
		"debian:10": "debian:buster",
		"debian:11": "debian:bullseye",
		"debian:12": "debian:bookworm",
		"debian:13": "debian:trixie",
		"debian":    "debian:{MAJOR}",
		"ubuntu":    "ubuntu:{VERSION_ID}",
		// RHEL family. Docker Hub's centos stops at 8: CentOS Stream lives on quay.io.
		"rhel":      "registry.access.redhat.com/ubi{MAJOR}/ubi:latest",
		"centos:7":  "centos:7",
		"centos":    "quay.io/centos/centos:stream{MAJOR}",
		"rocky":     "rockylinux:{MAJOR}",
		"almalinux": "almalinux:{MAJOR}",
		"fedora":    "fedora:{VERSION_ID}",
		"ol":        "oraclelinux:{MAJOR}",
		"amzn":      "amazonlinux:{VERSION_ID}",
		// SUSE: SLES VERSION_ID "15.5" names registry.suse.com/suse/sle15:15.5; openSUSE Leap's
		// images are tagged as its VERSION_ID ("15.5").
		"sles":                "registry.suse.com/suse/sle{MAJOR}:{VERSION_ID}",
		"opensuse-leap":       "opensuse/leap:{VERSION_ID}",
		"opensuse-tumbleweed": "opensuse/tumbleweed:latest",
		"alpine":              "alpine:{MAJOR}.{MINOR}",
		"arch":                "archlinux:latest",
	}
}

// Lookup returns the base reference for os-release's ID and VERSION_ID: the most specific key
// wins ("ID:VERSION_ID", then "ID:MAJOR.MINOR", "ID:MAJOR", then "ID"). It reports false when no
// key matches or the reference needs a part of the version that VERSION_ID lacks.
func (t BaseTable) Lookup(id, versionID string) (string, bool) {
	id = strings.ToLower(strings.TrimSpace(id))
	versionID = strings.TrimSpace(versionID)
	if id == "" {
		return "", false
	}
	parts := strings.SplitN(versionID, ".", 3)
	major, minor := parts[0], ""
	if len(parts) > 1 {
		minor = parts[1]
	}
	var keys []string
	if versionID != "" {
		keys = append(keys, id+":"+versionID)
		if minor != "" {
			keys = append(keys, id+":"+major+"."+minor)
		}
		keys = append(keys, id+":"+major)
	}
	keys = append(keys, id)
	for _, k := range keys {
		if ref, ok := t[k]; ok {
			return expandBase(ref, versionID, major, minor)
		}
	}
	return "", false
}

func expandBase(ref, versionID, major, minor string) (string, bool) {
	for _, p := range [][2]string{{"{VERSION_ID}", versionID}, {"{MAJOR}", major}, {"{MINOR}", minor}} {
		if strings.Contains(ref, p[0]) {
			if p[1] == "" {
				return "", false
			}
			ref = strings.ReplaceAll(ref, p[0], p[1])
		}
	}
	return ref, ref != ""
}

// Config is the converter's YAML configuration file.
//
//	bases:
//	  debian:12: registry.local/debian:12
//	  ubuntu: registry.local/ubuntu:{VERSION_ID}
//	excludes: ["/var/cache/*", "/tmp/*"]
//	compression: gzip
type Config struct {
	// Bases overrides and extends DefaultBases.
	Bases BaseTable `yaml:"bases"`
	// Excludes are anchored path patterns left out of the VM's diff.
	Excludes []string `yaml:"excludes"`
	// Compression of the new layers: gzip (default) or zstd.
	Compression Compression `yaml:"compression"`
}

// BaseTable returns DefaultBases overlaid with c.Bases.
func (c *Config) BaseTable() BaseTable {
	t := DefaultBases()
	if c != nil {
		for k, v := range c.Bases {
			t[strings.ToLower(k)] = v
		}
	}
	return t
}

var baseKeyRE = regexp.MustCompile(`^[A-Za-z0-9._-]+(:[A-Za-z0-9._~-]+)?$`)

// LoadConfig reads a YAML configuration file. Syntax errors, unknown settings and invalid values
// are reported with the line they are on.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	var doc yaml.Node
	_ = yaml.Unmarshal(b, &doc) // it decoded above, so it parses
	if err := validateConfig(&c, &doc); err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	return &c, nil
}

func validateConfig(c *Config, doc *yaml.Node) error {
	if err := c.Compression.validate(); err != nil {
		return fmt.Errorf("line %d: %w", valueLine(doc, "compression"), err)
	}
	bases := mappingValue(doc, "bases")
	if bases == nil {
		return nil
	}
	for i := 0; i+1 < len(bases.Content); i += 2 {
		k, v := bases.Content[i], bases.Content[i+1]
		if !baseKeyRE.MatchString(k.Value) {
			return fmt.Errorf("line %d: bases: key %q is not ID or ID:VERSION_ID", k.Line, k.Value)
		}
		if strings.TrimSpace(v.Value) == "" || strings.ContainsAny(v.Value, " \t") {
			return fmt.Errorf("line %d: bases: %q maps to %q, not an image reference", v.Line, k.Value, v.Value)
		}
	}
	return nil
}

// mappingValue returns the value node of key in the document's top-level mapping.
func mappingValue(doc *yaml.Node, key string) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func valueLine(doc *yaml.Node, key string) int {
	if n := mappingValue(doc, key); n != nil {
		return n.Line
	}
	return 0
}
