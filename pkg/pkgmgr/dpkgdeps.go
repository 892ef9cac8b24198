package pkgmgr

import (
	"errors"
	"fmt"
	"strings"
)

// ParseDpkgDepends parses a dpkg relationship field such as Depends,
// Pre-Depends or Recommends ("a (>= 1.2) | b:any, c") into one Dep of the
// given kind per comma-separated item. An empty field gives no Deps. The
// legacy operators "<" and ">" are returned as dpkg reads them: "<=" and ">=".
func ParseDpkgDepends(field string, kind DepKind) ([]Dep, error) {
	groups, err := parseDpkgRelations(field)
	if err != nil {
		return nil, err
	}
	deps := make([]Dep, 0, len(groups))
	for _, alts := range groups {
		deps = append(deps, Dep{Kind: kind, Alts: alts})
	}
	return deps, nil
}

// parseDpkgProvides parses a Provides field: relations without alternatives.
func parseDpkgProvides(field string) ([]Relation, error) {
	groups, err := parseDpkgRelations(field)
	if err != nil {
		return nil, err
	}
	rels := make([]Relation, 0, len(groups))
	for _, alts := range groups {
		if len(alts) != 1 {
			return nil, errors.New("alternatives are not allowed in Provides")
		}
		rels = append(rels, alts[0])
	}
	return rels, nil
}

func parseDpkgRelations(field string) ([][]Relation, error) {
	if strings.TrimSpace(field) == "" {
		return nil, nil
	}
	items := strings.Split(field, ",")
	out := make([][]Relation, 0, len(items))
	for i, item := range items {
		var alts []Relation
		for _, s := range strings.Split(item, "|") {
			rel, err := parseDpkgRelation(s)
			if err != nil {
				return nil, fmt.Errorf("parsing relation %d %q: %w", i+1, clipString(item), err)
			}
			alts = append(alts, rel)
		}
		out = append(out, alts)
	}
	return out, nil
}

// dpkgOps lists the relation operators, two-character ones first so the
// longest match wins.
var dpkgOps = []string{"<<", "<=", ">=", ">>", "=", "<", ">"}

func parseDpkgRelation(s string) (Relation, error) {
	s = strings.TrimSpace(s)
	end := strings.IndexAny(s, " \t\r\n(:")
	if end < 0 {
		end = len(s)
	}
	rel := Relation{Name: s[:end]}
	if err := checkDpkgName(rel.Name); err != nil {
		return Relation{}, err
	}
	rest := s[end:]
	if strings.HasPrefix(rest, ":") {
		end = strings.IndexAny(rest, " \t\r\n(")
		if end < 0 {
			end = len(rest)
		}
		rel.Arch = rest[1:end]
		if !isDpkgArch(rel.Arch) {
			return Relation{}, fmt.Errorf("invalid architecture qualifier %q", rel.Arch)
		}
		rest = rest[end:]
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return rel, nil
	}
	if rest[0] != '(' {
		return Relation{}, fmt.Errorf("unexpected %q", clipString(rest))
	}
	closing := strings.IndexByte(rest, ')')
	if closing < 0 {
		return Relation{}, errors.New("missing closing parenthesis")
	}
	if tail := strings.TrimSpace(rest[closing+1:]); tail != "" {
		return Relation{}, fmt.Errorf("unexpected %q after version", clipString(tail))
	}
	op, version, err := parseDpkgConstraint(strings.TrimSpace(rest[1:closing]))
	if err != nil {
		return Relation{}, err
	}
	rel.Op, rel.Version = op, version
	return rel, nil
}

// parseDpkgConstraint parses "OP VERSION" from inside parentheses.
func parseDpkgConstraint(s string) (op, version string, err error) {
	for _, o := range dpkgOps {
		if strings.HasPrefix(s, o) {
			op = o
			break
		}
	}
	if op == "" {
		return "", "", fmt.Errorf("missing operator in %q", clipString(s))
	}
	version = strings.TrimSpace(s[len(op):])
	if version == "" || strings.ContainsAny(version, " \t\r\n()") {
		return "", "", fmt.Errorf("invalid version %q", clipString(version))
	}
	switch op { // dpkg reads the deprecated forms as their inclusive ones
	case "<":
		op = "<="
	case ">":
		op = ">="
	}
	return op, version, nil
}

// checkDpkgName applies dpkg's rule: an alphanumeric first character, then
// alphanumerics and "+-._" (the underscore is deprecated but accepted).
func checkDpkgName(name string) error {
	if name == "" {
		return errors.New("empty package name")
	}
	for i, c := range name {
		if isAlnum(c) || (i > 0 && strings.ContainsRune("+-._", c)) {
			continue
		}
		return fmt.Errorf("invalid package name %q", clipString(name))
	}
	return nil
}

func isDpkgArch(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func clipString(s string) string { return clip([]byte(s)) }
