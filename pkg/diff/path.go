package diff

import "strings"

// ComparePaths orders two relative slash paths as fswalk.Walk visits them: the root "." first,
// a directory before its contents, and siblings by the bytes of their names. It compares
// component by component, so "a/b" comes before "a-c" although '-' < '/'. It returns -1, 0 or +1.
func ComparePaths(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == ".":
		return -1
	case b == ".":
		return 1
	}
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		switch {
		case ca == '/': // a's component ends first: it is a prefix of b's
			return -1
		case cb == '/':
			return 1
		case ca < cb:
			return -1
		default:
			return 1
		}
	}
	if len(a) < len(b) {
		return -1
	}
	return 1
}

// isUnder reports whether p lies strictly below the directory dir ("." holds everything else).
func isUnder(p, dir string) bool {
	if dir == "." {
		return p != "."
	}
	return len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

// parentOf returns the directory holding p: "." for top-level names.
func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "."
	}
	return p[:i]
}
