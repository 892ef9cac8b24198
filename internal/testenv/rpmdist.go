package testenv

import (
	"testing"

	"github.com/vm2image/vm2image/internal/fixture"
)

// RPMDist is the test-built RPM distribution (see fixture.RPMDist).
type RPMDist = fixture.RPMDist

// RPMDistPort is the port the RPM distribution's webd service listens on.
const RPMDistPort = fixture.RPMDistPort

// BuildRPMDist returns the cached test-built RPM distribution, building it on first use with
// rpmbuild, createrepo_c and the host's dnf.
func BuildRPMDist(t testing.TB) *RPMDist {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "rpmbuild", "rpm", "createrepo_c", "dnf", "busybox")
	d, err := fixture.BuildRPMDist(func(f string, a ...any) { t.Logf(f, a...) })
	if err != nil {
		t.Fatalf("building the test RPM distribution: %v", err)
	}
	return d
}
