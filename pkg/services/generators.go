package services

import (
	"path"
	"regexp"
	"strings"
)

// Some packages enable their services through a systemd generator: a program systemd runs at
// boot that writes units and .wants links under /run. A converted VM's /run is empty and the
// VM's programs never run on the converter host, so the generators vm2image knows are emulated
// here from the configuration they read, as data.

// GeneratorInputs are the VM directories the emulated generators read (recursively; only the
// files KeepGeneratorInput accepts are kept).
var GeneratorInputs = []string{"/etc/postgresql"}

// KeepGeneratorInput reports whether the file at p (absolute, in the VM) is one an emulated
// generator reads.
func KeepGeneratorInput(p string) bool {
	return strings.HasPrefix(p, "/etc/postgresql/") &&
		(path.Base(p) == "start.conf" || path.Base(p) == "postgresql.conf")
}

// generator is one emulated generator: when parent is enabled, it also starts wants(m).
type generator struct {
	parent string
	wants  func(m *MemFS) []string
}

var generators = []generator{
	{parent: "postgresql.service", wants: postgresqlClusters},
}

// generatedWants returns the units the known generators make the enabled units want.
func generatedWants(m *MemFS, enabled []string) []string {
	var out []string
	for _, g := range generators {
		for _, e := range enabled {
			if e == g.parent {
				out = append(out, g.wants(m)...)
			}
		}
	}
	return out
}

// pgName is what a PostgreSQL version or cluster name may hold to become part of a unit name.
var pgName = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$`)

// postgresqlClusters emulates postgresql-common's generator: postgresql.service wants
// postgresql@VERSION-CLUSTER.service for every /etc/postgresql/VERSION/CLUSTER that holds a
// postgresql.conf and whose start.conf, if any, says "auto" and nothing else. Nothing when the
// VM has no postgresql@.service template. Unlike the real generator it does not check that
// /usr/lib/postgresql/VERSION/bin/postgres exists (that tree is not read): a cluster whose
// server package was removed would be a service that fails to start, as its report shows.
func postgresqlClusters(m *MemFS) []string {
	if findFragment(m, "postgresql@.service") == "" {
		return nil
	}
	var out []string
	for _, v := range m.ReadDir("/etc/postgresql") {
		for _, c := range m.ReadDir(path.Join("/etc/postgresql", v)) {
			dir := path.Join("/etc/postgresql", v, c)
			if !pgName.MatchString(v) || !pgName.MatchString(c) || strings.HasPrefix(v, ".") || strings.HasPrefix(c, ".") {
				continue
			}
			if _, err := m.ReadFile(path.Join(dir, "postgresql.conf")); err != nil {
				continue
			}
			if b, err := m.ReadFile(path.Join(dir, "start.conf")); err == nil && startMode(string(b)) != "auto" {
				continue
			}
			out = append(out, "postgresql@"+v+"-"+c+".service")
		}
	}
	return out
}

// startMode returns start.conf's setting as the generator reads it: comments and blank lines
// removed, the rest trimmed; "auto" only when that is all there is.
func startMode(s string) string {
	var words []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" {
			words = append(words, l)
		}
	}
	return strings.Join(words, "\n")
}
