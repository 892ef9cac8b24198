package testenv

import (
	"testing"

	"github.com/vm2image/vm2image/internal/fixture"
)

// Overlay mounts a writable overlay on top of the read-only root lower and returns the merged
// directory. Writes land in a temporary upper directory; everything is unmounted and removed
// when the test ends.
func Overlay(t testing.TB, lower string) string {
	t.Helper()
	RequireRoot(t)
	merged, unmount, err := fixture.MountOverlay(t.TempDir(), "test", lower)
	if err != nil {
		Skip(t, err.Error())
	}
	t.Cleanup(unmount)
	return merged
}
