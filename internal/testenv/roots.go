package testenv

import (
	"testing"

	"github.com/vm2image/vm2image/internal/fixture"
)

// The cached roots live in internal/fixture; these names keep the tests' spelling.

// CacheDirEnv overrides where debootstrap roots are cached (outside the repository).
const CacheDirEnv = fixture.CacheDirEnv

// Recipe describes a Debian root built with debootstrap and an optional customisation script.
type Recipe = fixture.Recipe

// CacheDir returns the directory that holds cached fixture roots.
func CacheDir() string { return fixture.CacheDir() }

// BuildRoot builds (or finds) the recipe's root in the cache and returns its path.
func BuildRoot(r Recipe, logf func(string, ...any)) (string, error) {
	return fixture.BuildRoot(r, logf)
}

// RootID identifies one build of a cached root: see fixture.RootID.
func RootID(r Recipe) string { return fixture.RootID(r) }

// RunIn runs a shell script chrooted into root with /proc mounted in a private mount namespace.
func RunIn(root, script string) error { return fixture.RunIn(root, script) }

// Root returns the path of the recipe's cached root, building it on first use. Concurrent test
// processes share the cache: one builds while the others wait on a lock. The returned tree must be
// treated as read-only; use Overlay for a writable view.
func Root(t testing.TB, r Recipe) string {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "debootstrap", "chroot")
	dir, err := BuildRoot(r, func(format string, args ...any) { t.Logf(format, args...) })
	if err != nil {
		t.Fatalf("building fixture root %s: %v", r.Key(), err)
	}
	return dir
}
