package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/fixture"
	"github.com/vm2image/vm2image/internal/testenv"
)

// suseRoot is a writable view of lower whose os-release names openSUSE Leap and, when
// repoURL is set, whose zypper repository file names the test repository there.
func suseRoot(t *testing.T, lower, repoURL string) string {
	t.Helper()
	root := testenv.Overlay(t, lower)
	writeFile(t, filepath.Join(root, "etc/os-release"), fixture.SUSEOSRelease)
	if repoURL != "" {
		if err := os.MkdirAll(filepath.Join(root, "etc/zypp/repos.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "etc/zypp/repos.d/test.repo"),
			"[test]\nname=vm2image test repository\nbaseurl="+repoURL+"\ntype=rpm-md\nenabled=1\nautorefresh=1\ngpgcheck=0\n")
	}
	return root
}

// suseBase imports the test RPM distribution's bare base (filesystem and shell) with an
// os-release naming openSUSE Leap.
func suseBase(t *testing.T, d *testenv.RPMDist) string {
	t.Helper()
	return testenv.ImportRoot(t, suseRoot(t, d.Base, ""), "vm2image-test/rpmbase:suse", d.Key+"-suse")
}

// TestConvertZypperOutside converts the test RPM distribution's VM, named openSUSE Leap, onto
// a base without an installer: the host's zypper, run in the build sandbox with --root,
// installs the VM's packages at their exact versions (libfoo's older epoch version against
// the repository's newer one, the dependency cycle, the %pre-made user) from the VM's
// zypper repository, and the image equals the VM.
func TestConvertZypperOutside(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	base := suseBase(t, d)
	vm := suseRoot(t, d.VM, testenv.ServeDir(t, d.Repo))
	rep, summary := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/zypper-outside:%d", os.Getpid()))
	p := rep.Packages
	if p == nil || p.Skipped != "" {
		t.Fatalf("no packages layer: %+v", p)
	}
	if !strings.Contains(p.Installer, "from outside") || !strings.Contains(summary, "the host's zypper") {
		t.Errorf("installer %q: want the host's zypper from outside the base root\n%s", p.Installer, summary)
	}
	if len(p.Missing)+len(p.VersionDiffers)+len(p.Errors) > 0 {
		t.Errorf("the installer did not install every VM package at its version: missing %v, differs %v, errors %v", p.Missing, p.VersionDiffers, p.Errors)
	}
	if p.Installed != p.VM || p.LayerBytes < 1<<10 {
		t.Errorf("the build root holds %d packages (layer %d bytes), the VM %d", p.Installed, p.LayerBytes, p.VM)
	}
	checkRPMImage(t, vm, rep.Image.Tag)
}

// TestConvertZypperInside converts the same VM onto a base that carries zypper: zypper runs
// inside the base root, in the build sandbox, and the image equals the VM.
func TestConvertZypperInside(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	root := testenv.ZypperInstBase(t, d)
	base := testenv.ImportRoot(t, root, "vm2image-test/rpmbase:zypper", d.Key+"-"+filepath.Base(root))
	vm := suseRoot(t, d.VM, testenv.ServeDir(t, d.Repo))
	rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/zypper-inside:%d", os.Getpid()))
	p := rep.Packages
	if p == nil || p.Skipped != "" {
		t.Fatalf("no packages layer: %+v", p)
	}
	if !strings.Contains(p.Installer, "in the base root (zypper)") {
		t.Errorf("installer %q: want the base's own zypper", p.Installer)
	}
	if len(p.Missing)+len(p.VersionDiffers)+len(p.Errors) > 0 {
		t.Errorf("the installer did not install every VM package at its version: missing %v, differs %v, errors %v", p.Missing, p.VersionDiffers, p.Errors)
	}
	checkRPMImage(t, vm, rep.Image.Tag)
}

// TestConvertZypperFailures converts an openSUSE-named VM holding a package the repository
// lacks (orphan) and one whose %pre fails (badpre): each gives a clear report line, the
// follow-up pass runs zypper again (not dnf), and the image still equals the VM.
func TestConvertZypperFailures(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	vm := suseRoot(t, d.BadVM, testenv.ServeDir(t, d.Repo))
	rep, summary := convertDir(t, vm, suseBase(t, d), fmt.Sprintf("vm2image-test/zypper-bad:%d", os.Getpid()))
	p := rep.Packages
	if !strings.Contains(strings.Join(p.Missing, " "), "orphan=1.0-1") || !strings.Contains(summary, "not in the repository: ") {
		t.Errorf("orphan, which the repository lacks, is not reported missing: %v\n%s", p.Missing, summary)
	}
	if errs := strings.Join(p.Errors, "\n"); !strings.Contains(errs, "%prein(badpre-1.0-1.x86_64) scriptlet failed") || !strings.Contains(summary, "packages problem:") {
		t.Errorf("badpre's failing %%pre is not reported: %v", p.Errors)
	}
	if p.Installed < p.VM-2 {
		t.Errorf("the build root holds %d packages, want the VM's %d but orphan and badpre", p.Installed, p.VM)
	}
	checkRPMImage(t, vm, rep.Image.Tag)
	t.Run("unreachable repository", func(t *testing.T) {
		vm := suseRoot(t, d.VM, "http://127.0.0.1:1/")
		rep, _ := convertDir(t, vm, suseBase(t, d), fmt.Sprintf("vm2image-test/zypper-norepo:%d", os.Getpid()))
		if errs := strings.Join(rep.Packages.Errors, "\n"); !strings.Contains(errs, "a repository did not answer") {
			t.Errorf("the unreachable repository is not reported: %v", rep.Packages.Errors)
		}
		checkRPMImage(t, vm, rep.Image.Tag)
	})
}

// TestConvertZypperConfigAttack is an openSUSE-named VM whose zypp.conf moves zypper's plugin
// directory to /etc/pki/rpm-gpg, carried whole as keys are, where it left a commit plugin
// that libzypp would run on every installation, and its repository directory there too. The
// directives are dropped and reported, the plugin never runs, and the VM's packages still
// install. zypper from outside reads the tool root's zypp.conf, never the target's; the base
// carrying zypper reads the build root's, the VM's filtered copy. Carried files keep their
// content only (no mode), so the plugin is not executable in the build root either: what
// this test proves failing is the allowlist's report; the plugin check guards the rest.
func TestConvertZypperConfigAttack(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	repo := testenv.ServeDir(t, d.Repo)
	t.Run("outside", func(t *testing.T) { zypperConfigAttack(t, d, suseBase(t, d), repo) })
	t.Run("inside", func(t *testing.T) {
		root := testenv.ZypperInstBase(t, d)
		zypperConfigAttack(t, d, testenv.ImportRoot(t, root, "vm2image-test/rpmbase:zypper", d.Key+"-"+filepath.Base(root)), repo)
	})
}

// zypperConfigAttack converts the attacking VM onto base and checks nothing of it ran.
func zypperConfigAttack(t *testing.T, d *testenv.RPMDist, base, repo string) {
	vm := suseRoot(t, d.VM, repo)
	writeFile(t, filepath.Join(vm, "etc/zypp/zypp.conf"), "[main]\npluginsdir = /etc/pki/rpm-gpg\nreposdir = /etc/pki/rpm-gpg/repos\nsolver.onlyRequires = true\n")
	plugin := "#!/bin/sh\nfor d in /target / ; do echo pwned > $d/pwned-by-zypp-plugin; done\nexit 1\n"
	for _, p := range []string{"etc/pki/rpm-gpg/commit/evil", "etc/pki/rpm-gpg/system/evil"} {
		if err := os.MkdirAll(filepath.Join(vm, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(vm, p), plugin)
		if err := os.Chmod(filepath.Join(vm, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/zypper-attack:%d", os.Getpid()))
	dropped := strings.Join(rep.Packages.ConfigDropped, "\n")
	for _, k := range []string{"pluginsdir", "reposdir"} {
		if !strings.Contains(dropped, "/etc/zypp/zypp.conf: [main] "+k) {
			t.Errorf("%s of the VM's zypp.conf is not reported dropped: %v", k, rep.Packages.ConfigDropped)
		}
	}
	if p := rep.Packages; len(p.Missing)+len(p.Errors) > 0 || p.Installed != p.VM {
		t.Fatalf("the VM's packages did not install: installed %d of %d, missing %v, errors %v", p.Installed, p.VM, p.Missing, p.Errors)
	}
	if layerHolds(t, filepath.Join(convertCacheDir(), "layers", rep.Packages.CacheKey, "layer.tar"), "pwned-by-zypp-plugin") {
		t.Error("the VM's zypper plugin ran in the build")
	}
	if _, err := os.Stat("/pwned-by-zypp-plugin"); err == nil {
		t.Error("the VM's zypper plugin ran on the host")
	}
}
