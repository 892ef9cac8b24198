package builder

import (
	"slices"
	"testing"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// TestNetworkPolicy: only apt's index update and the download half of an install get the
// network; the install that runs maintainer scripts, marks and purges do not.
func TestNetworkPolicy(t *testing.T) {
	install := pkgmgr.Step{Name: "install", Argv: []string{"apt-get", "install", "-y", "a=1"}}
	dl, ok := downloadStep(pkgmgr.Dpkg, install)
	if !ok || !slices.Equal(dl.Argv, []string{"apt-get", "install", "--download-only", "-y", "a=1"}) {
		t.Errorf("download step = %q, %v", dl.Argv, ok)
	}
	if slices.Contains(install.Argv, "--download-only") {
		t.Error("downloadStep changed the install step's argv")
	}
	for _, tc := range []struct {
		m    pkgmgr.Manager
		argv []string
		net  bool
	}{
		{pkgmgr.Dpkg, []string{"apt-get", "update"}, true},
		{pkgmgr.Dpkg, install.Argv, false},
		{pkgmgr.Dpkg, []string{"apt-mark", "auto", "a"}, false},
		{pkgmgr.Dpkg, []string{"dpkg", "--purge", "a"}, false},
		{pkgmgr.RPM, []string{"dnf", "install", "-y", "a"}, true},
	} {
		if got := needsNetwork(tc.m, pkgmgr.Step{Argv: tc.argv}); got != tc.net {
			t.Errorf("needsNetwork(%s %q) = %v, want %v", tc.m, tc.argv, got, tc.net)
		}
	}
	if _, ok := downloadStep(pkgmgr.RPM, pkgmgr.Step{Argv: []string{"dnf", "install"}}); ok {
		t.Error("a dnf install got a download step")
	}
}
