package pkgmgr

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestOutsideStep points each installer at the root and leaves other commands alone.
func TestOutsideStep(t *testing.T) {
	o := OutsideOptions{Root: "/target", ReleaseVer: "40", RPMDBPath: "/var/lib/rpm"}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"dnf", "install", "-y", "a-1-1.x86_64"}, []string{"dnf", "--installroot=/target", "--noplugins",
			"--setopt=reposdir=/target/etc/yum.repos.d", "--releasever=40", "install", "-y", "a-1-1.x86_64"}},
		{[]string{"zypper", "--non-interactive", "refresh"}, []string{"zypper", "--root", "/target", "--non-interactive", "refresh"}},
		{[]string{"rpm", "-e", "--nodeps", "a"}, []string{"rpm", "--root=/target", "--dbpath=/var/lib/rpm", "-e", "--nodeps", "a"}},
		{[]string{"pacman", "-S", "x"}, []string{"pacman", "--root", "/target", "--dbpath", "/target/var/lib/pacman",
			"--config", "/target/etc/pacman.conf", "--cachedir", "/target/var/cache/pacman/pkg", "--gpgdir", "/target/etc/pacman.d/gnupg",
			"--hookdir", "/target/etc/pacman.d/hooks", "--logfile", "/target/var/log/pacman.log", "-S", "x"}},
		{[]string{"apt-get", "install", "x"}, []string{"apt-get", "install", "x"}},
	} {
		if got := OutsideStep(Step{Argv: tc.in}, o).Argv; !slices.Equal(got, tc.want) {
			t.Errorf("%v:\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	if CanRunOutside(&Plan{Manager: Dpkg, Steps: []Step{{Argv: []string{"apt-get", "update"}}}}) {
		t.Error("an apt plan runs from outside")
	}
	if !CanRunOutside(&Plan{Manager: RPM, Steps: []Step{{Argv: []string{"dnf", "install"}}, {Argv: []string{"rpm", "-e"}}}}) {
		t.Error("a dnf plan cannot run from outside")
	}
}

// TestRPMDBPath finds the database where the root keeps it.
func TestRPMDBPath(t *testing.T) {
	root := t.TempDir()
	if got := RPMDBPath(root); got != "/var/lib/rpm" {
		t.Errorf("empty root: %s", got)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/sysimage/rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := RPMDBPath(root); got != "/usr/lib/sysimage/rpm" {
		t.Errorf("root with /usr/lib/sysimage: %s", got)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib/rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/rpm/rpmdb.sqlite"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := RPMDBPath(root); got != "/var/lib/rpm" {
		t.Errorf("root with /var/lib/rpm/rpmdb.sqlite: %s", got)
	}
}
