package builder

import (
	"slices"
	"testing"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// TestNetworkPolicy: only index refreshes and the download half of an install get the
// network; the install half, which runs the packages' scripts, marks and removals do not.
// apt, dnf, zypper and pacman split their installs; yum and apk keep the network.
func TestNetworkPolicy(t *testing.T) {
	for _, tc := range []struct {
		m                 pkgmgr.Manager
		argv, dl, install []string // dl nil: no split
	}{
		{pkgmgr.Dpkg, []string{"apt-get", "install", "-y", "a=1"},
			[]string{"apt-get", "install", "--download-only", "-y", "a=1"}, []string{"apt-get", "install", "-y", "a=1"}},
		{pkgmgr.RPM, []string{"dnf", "install", "-y", "a-1-1.x86_64"},
			[]string{"dnf", "install", "--downloadonly", "-y", "a-1-1.x86_64"}, []string{"dnf", "install", "--cacheonly", "-y", "a-1-1.x86_64"}},
		{pkgmgr.RPM, []string{"zypper", "--non-interactive", "install", "--oldpackage", "a.x86_64=1-1"},
			[]string{"zypper", "--non-interactive", "install", "--download-only", "--oldpackage", "a.x86_64=1-1"},
			[]string{"zypper", "--non-interactive", "--no-refresh", "install", "--oldpackage", "a.x86_64=1-1"}},
		{pkgmgr.Pacman, []string{"pacman", "-S", "--noconfirm", "--needed", "a"},
			[]string{"pacman", "-Sw", "--noconfirm", "--needed", "a"}, []string{"pacman", "-S", "--noconfirm", "--needed", "a"}},
		{pkgmgr.RPM, []string{"yum", "install", "-y", "a"}, nil, nil},
		{pkgmgr.APK, []string{"apk", "add", "a"}, nil, nil},
	} {
		s := pkgmgr.Step{Name: "install", Argv: slices.Clone(tc.argv)}
		sp, ok := offlineSplit(tc.m, s)
		if ok != (tc.dl != nil) || ok && (!slices.Equal(sp.download.Argv, tc.dl) || !slices.Equal(sp.install.Argv, tc.install)) {
			t.Errorf("offlineSplit(%q) = %q, %q, %v; want %q, %q", tc.argv, sp.download.Argv, sp.install.Argv, ok, tc.dl, tc.install)
		}
		if !slices.Equal(s.Argv, tc.argv) {
			t.Errorf("offlineSplit changed the step's argv: %q", s.Argv)
		}
		if got := needsNetwork(tc.m, s); got != (tc.dl == nil) {
			t.Errorf("needsNetwork(%q) = %v", tc.argv, got)
		}
	}
	for _, tc := range []struct {
		m    pkgmgr.Manager
		argv []string
		net  bool
	}{
		{pkgmgr.Dpkg, []string{"apt-get", "update"}, true},
		{pkgmgr.Dpkg, []string{"apt-mark", "auto", "a"}, false},
		{pkgmgr.Dpkg, []string{"dpkg", "--purge", "a"}, false},
		{pkgmgr.RPM, []string{"zypper", "--non-interactive", "refresh"}, true},
		{pkgmgr.RPM, []string{"rpm", "-e", "--nodeps", "a-1-1.x86_64"}, false},
		{pkgmgr.Pacman, []string{"pacman", "-Sy", "--noconfirm"}, true},
		{pkgmgr.Pacman, []string{"pacman", "-D", "--asdeps", "a"}, false},
		{pkgmgr.Pacman, []string{"pacman", "-Rdd", "--noconfirm", "a"}, false},
	} {
		if got := needsNetwork(tc.m, pkgmgr.Step{Argv: tc.argv}); got != tc.net {
			t.Errorf("needsNetwork(%s %q) = %v, want %v", tc.m, tc.argv, got, tc.net)
		}
	}
}
