package fswalk

import (
	"fmt"
	"path"
	"strings"
)

// Match reports whether the anchored exclude pattern excludes the slash path p: whether the
// pattern matches p itself or one of p's parent directories.
//
// Both are taken from the root: a leading "/" is optional on either, so "tmp/*" is "/tmp/*" and
// p may be an Entry.Path ("var/log/x") or "/var/log/x". The pattern is cleaned (path.Clean),
// then its components are matched one by one with path.Match against p's first components: a
// pattern with n components only ever matches a path of n components, or the subtree under
// one, so "/proc" matches "/proc" and "/proc/1/maps" but not "/a/proc". There is no "**".
// A malformed pattern, and an empty one ("" or "/"), matches nothing.
func Match(pattern, p string) bool {
	pattern = cleanPattern(pattern)
	if pattern == "" {
		return false
	}
	p = strings.Trim(p, "/")
	if p == "." {
		return false
	}
	for pattern != "" {
		var pc, c string
		pc, pattern, _ = strings.Cut(pattern, "/")
		if p == "" {
			return false
		}
		c, p, _ = strings.Cut(p, "/")
		if ok, err := path.Match(pc, c); !ok || err != nil {
			return false
		}
	}
	return true
}

// cleanPattern returns the pattern cleaned and without its leading "/", or "" for a pattern that
// matches nothing.
func cleanPattern(pattern string) string {
	pattern = path.Clean("/" + pattern)
	if pattern == "/" {
		return ""
	}
	return pattern[1:]
}

// patternPart is one component of a compiled pattern.
type patternPart struct {
	s       string
	literal bool // no meta characters: compare with ==
}

// excluder matches compiled patterns against the components of a path, at the depth of that
// path only: the walk checks every directory before it descends into it.
type excluder struct {
	byDepth map[int][][]patternPart
}

// compileExcludes validates and compiles patterns.
func compileExcludes(patterns []string) (excluder, error) {
	x := excluder{}
	for _, raw := range patterns {
		p := cleanPattern(raw)
		if p == "" {
			continue
		}
		parts := strings.Split(p, "/")
		compiled := make([]patternPart, len(parts))
		for i, s := range parts {
			if _, err := path.Match(s, ""); err != nil {
				return x, fmt.Errorf("compiling exclude %q: %w", raw, err)
			}
			compiled[i] = patternPart{s: s, literal: !strings.ContainsAny(s, `*?[\`)}
		}
		if x.byDepth == nil {
			x.byDepth = make(map[int][][]patternPart)
		}
		x.byDepth[len(parts)] = append(x.byDepth[len(parts)], compiled)
	}
	return x, nil
}

// match reports whether a pattern with exactly len(names) components matches names.
func (x *excluder) match(names []string) bool {
	if x.byDepth == nil {
		return false
	}
Patterns:
	for _, pat := range x.byDepth[len(names)] {
		for i, part := range pat {
			if part.literal {
				if part.s != names[i] {
					continue Patterns
				}
			} else if ok, _ := path.Match(part.s, names[i]); !ok {
				continue Patterns
			}
		}
		return true
	}
	return false
}

// matchAny reports whether a pattern matches the slash path rel or one of its parents.
func (x *excluder) matchAny(rel string) bool {
	if x.byDepth == nil || rel == "." {
		return false
	}
	names := strings.Split(rel, "/")
	for n := 1; n <= len(names); n++ {
		if x.match(names[:n]) {
			return true
		}
	}
	return false
}
