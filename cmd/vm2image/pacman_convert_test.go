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

// pacmanVM is a writable view of one of the test pacman distribution's VMs whose pacman.conf
// names the repository at repoURL.
func pacmanVM(t *testing.T, lower, repoURL string) string {
	t.Helper()
	root := testenv.Overlay(t, lower)
	writeFile(t, filepath.Join(root, "etc/pacman.conf"), fixture.PacmanConf(repoURL))
	return root
}

// pacmanList is the root's package list as the real pacman reads it, then the packages it
// has as dependencies (the install reasons).
func pacmanList(t *testing.T, root string) string {
	t.Helper()
	args := []string{"--root", root, "--dbpath", filepath.Join(root, "var/lib/pacman"), "--config", "/dev/null"}
	all := run(t, "pacman", append([]string{"-Q"}, args...)...)
	deps := run(t, "pacman", append([]string{"-Qqd"}, args...)...)
	var b strings.Builder
	b.WriteString(all)
	for _, d := range strings.Fields(deps) {
		fmt.Fprintf(&b, "asdeps %s\n", d)
	}
	return b.String()
}

// TestConvertPacmanOutside converts the test pacman distribution's VM onto a base without
// pacman (filesystem and shell): the host's pacman, run in the build sandbox with --root and
// every path option in the root, installs the VM's packages (app-core found through libfoo's
// virtual foo-abi, its install scriptlet making the user webd runs as), restores their
// install reasons, and the image equals the VM.
func TestConvertPacmanOutside(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildPacmanDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/pacmanbase:bare", d.Key)
	vm := pacmanVM(t, d.VM, testenv.ServeDir(t, d.Repo))
	rep, summary := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/pacman-outside:%d", os.Getpid()))
	p := rep.Packages
	if p == nil || p.Skipped != "" {
		t.Fatalf("no packages layer: %+v", p)
	}
	if !strings.Contains(p.Installer, "from outside") || !strings.Contains(summary, "installed:") {
		t.Errorf("installer %q: want the host's pacman from outside the base root", p.Installer)
	}
	if len(p.Missing)+len(p.VersionDiffers)+len(p.Errors) > 0 {
		t.Errorf("the installer did not install every VM package at its version: missing %v, differs %v, errors %v", p.Missing, p.VersionDiffers, p.Errors)
	}
	if p.Installed != p.VM || p.LayerBytes < 1<<10 {
		t.Errorf("the build root holds %d packages (layer %d bytes), the VM %d", p.Installed, p.LayerBytes, p.VM)
	}
	checkImage(t, vm, rep.Image.Tag, "pacman -Q", pacmanList)
}

// TestConvertPacmanFailures converts a VM holding a package the repository lacks (orphan)
// and libfoo at a version the repository lacks (2:0.9-1; pacman cannot pin), and badpre whose
// pre_install fails: the report names orphan "not in the repository", libfoo's version as not
// in it and badpre's failure, the other packages are
// installed, and the image still equals the VM (the diff layer carries the VM's files and
// database entries).
// A VM whose repository does not answer is reported so, and its image equals it too.
func TestConvertPacmanFailures(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildPacmanDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/pacmanbase:bare", d.Key)
	vm := pacmanVM(t, d.BadVM, testenv.ServeDir(t, d.Repo))
	rep, summary := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/pacman-bad:%d", os.Getpid()))
	p := rep.Packages
	if !strings.Contains(strings.Join(p.Missing, " "), "orphan=1.0-1") || !strings.Contains(summary, "not in the repository: ") {
		t.Errorf("orphan, which the repository lacks, is not reported missing: %v\n%s", p.Missing, summary)
	}
	if len(p.VersionDiffers) != 1 || p.VersionDiffers[0].Name != "libfoo" || p.VersionDiffers[0].VMVersion != "2:0.9-1" ||
		!strings.Contains(summary, "VM's version not in the repository: libfoo=2:0.9-1 (installed 2:1.0-1)") {
		t.Errorf("libfoo's version, which the repository lacks, is not reported: %+v\n%s", p.VersionDiffers, summary)
	}
	// pacman installs a package whose pre_install fails all the same: the report says so.
	if errs := strings.Join(p.Errors, "\n"); !strings.Contains(errs, "a package scriptlet failed (the package is installed all the same): installing badpre...; badpre: refusing to install") ||
		!strings.Contains(summary, "packages problem:") {
		t.Errorf("badpre's failing pre_install is not reported: %v", p.Errors)
	}
	if p.Installed != p.VM-1 {
		t.Errorf("the build root holds %d packages, want the VM's %d but orphan", p.Installed, p.VM)
	}
	checkImage(t, vm, rep.Image.Tag, "pacman -Q", pacmanList)
	t.Run("unreachable repository", func(t *testing.T) {
		vm := pacmanVM(t, d.VM, "http://127.0.0.1:1/")
		rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/pacman-norepo:%d", os.Getpid()))
		if errs := strings.Join(rep.Packages.Errors, "\n"); !strings.Contains(errs, "a repository did not answer") {
			t.Errorf("the unreachable repository is not reported: %v", rep.Packages.Errors)
		}
		checkImage(t, vm, rep.Image.Tag, "pacman -Q", pacmanList)
	})
}

// TestConvertPacmanConfigAttack is a VM whose pacman configuration asks for its own code in
// the build: a hook in /etc/pacman.d/hooks, a HookDir naming another of its directories, an
// XferCommand (run by pacman itself, outside the root) and a ScriptShell. The file is
// carried through the allowlist: those directives and the hooks are dropped and reported,
// nothing of them runs, and the packages still install.
func TestConvertPacmanConfigAttack(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildPacmanDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/pacmanbase:bare", d.Key)
	vm := pacmanVM(t, d.VM, testenv.ServeDir(t, d.Repo))
	conf, err := os.ReadFile(filepath.Join(vm, "etc/pacman.conf"))
	if err != nil {
		t.Fatal(err)
	}
	evil := strings.Replace(string(conf), "[options]\n", "[options]\nHookDir = /target/etc/pacman.d/more\n"+
		"XferCommand = /bin/sh -c 'echo pwned > /pwned-by-xfer; echo pwned > /target/pwned-by-xfer; exec curl -fsSo \"$0\" \"$1\"' %o %u\n"+
		"ScriptShell = /usr/bin/busybox\n", 1)
	writeFile(t, filepath.Join(vm, "etc/pacman.conf"), evil)
	hook := "[Trigger]\nOperation = Install\nType = Package\nTarget = *\n\n[Action]\nWhen = PostTransaction\n" +
		"Exec = /bin/sh -c 'echo pwned > /pwned-by-hook'\n"
	for _, dir := range []string{"hooks", "more"} {
		if err := os.MkdirAll(filepath.Join(vm, "etc/pacman.d", dir), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(vm, "etc/pacman.d", dir, "evil.hook"), hook)
	}
	rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/pacman-attack:%d", os.Getpid()))
	dropped := strings.Join(rep.Packages.ConfigDropped, "\n")
	for _, k := range []string{"/etc/pacman.conf: HookDir", "/etc/pacman.conf: XferCommand", "/etc/pacman.conf: ScriptShell",
		"/etc/pacman.d/hooks/evil.hook", "/etc/pacman.d/more/evil.hook: Exec"} {
		if !strings.Contains(dropped, k) {
			t.Errorf("%q is not reported dropped: %v", k, rep.Packages.ConfigDropped)
		}
	}
	layer := filepath.Join(convertCacheDir(), "layers", rep.Packages.CacheKey, "layer.tar")
	for _, f := range []string{"pwned-by-hook", "pwned-by-xfer"} {
		if layerHolds(t, layer, f) {
			t.Errorf("the VM's configuration ran its code in the build: %s in the packages layer", f)
		}
		if _, err := os.Stat("/" + f); err == nil {
			t.Errorf("the VM's configuration ran its code on the host: /%s", f)
		}
	}
	if p := rep.Packages; len(p.Missing)+len(p.Errors) > 0 || p.Installed != p.VM {
		t.Errorf("the build failed: installed %d of %d, missing %v, errors %v", p.Installed, p.VM, p.Missing, p.Errors)
	}
}

// TestConvertPacmanInside converts the same VM onto a base that carries pacman: pacman runs
// inside the base root, in the build sandbox, and the image equals the VM, install reasons
// included.
func TestConvertPacmanInside(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildPacmanDist(t)
	root := testenv.PacmanInstBase(t, d)
	base := testenv.ImportRoot(t, root, "vm2image-test/pacmanbase:pacman", d.Key+"-"+filepath.Base(root))
	vm := pacmanVM(t, d.VM, testenv.ServeDir(t, d.Repo))
	rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/pacman-inside:%d", os.Getpid()))
	p := rep.Packages
	if p == nil || p.Skipped != "" {
		t.Fatalf("no packages layer: %+v", p)
	}
	if !strings.Contains(p.Installer, "in the base root (pacman)") {
		t.Errorf("installer %q: want the base's own pacman", p.Installer)
	}
	if len(p.Missing)+len(p.VersionDiffers)+len(p.Errors) > 0 {
		t.Errorf("the installer did not install every VM package at its version: missing %v, differs %v, errors %v", p.Missing, p.VersionDiffers, p.Errors)
	}
	checkImage(t, vm, rep.Image.Tag, "pacman -Q", pacmanList)
}
