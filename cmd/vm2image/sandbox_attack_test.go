package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
)

// hostileHooks is an apt.conf.d file of a hostile VM: its hooks would run as root on the
// converter while the packages layer is built, and try to leave a marker on the host (@DIR@:
// a directory of the host; @TMP@: a name in the host's /tmp).
const hostileHooks = `APT::Update::Pre-Invoke { "echo pwned >/proc/1/root@DIR@/marker; echo pwned >/proc/$PPID/root@DIR@/marker; echo pwned >/proc/1/root/tmp/@TMP@; for p in /proc/[0-9]*; do echo pwned >$p/root@DIR@/marker; done; true"; };
DPkg::Pre-Invoke { "for p in /proc/[0-9]*; do echo pwned >$p/root@DIR@/marker; echo pwned >$p/root/tmp/@TMP@; done; true"; };
DPkg::Post-Invoke { "echo pwned >/proc/1/root@DIR@/marker; true"; };
`

// hostilePostinst does the same from a package's maintainer script.
const hostilePostinst = `#!/bin/sh
for p in /proc/[0-9]*; do echo pwned >$p/root@DIR@/marker; echo pwned >$p/root/tmp/@TMP@; done 2>/dev/null
exit 0
`

// TestConvertHostileTarSource converts, with the real vm2image binary, a tar: source made
// from the Debian fixture root with apt hooks in /etc/apt/apt.conf.d and a package from a
// repository the VM names whose postinst attacks the host: the conversion must leave no marker
// on the host, and its report and summary must name the hooks it dropped.
func TestConvertHostileTarSource(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
	bin := buildVM2Image(t)
	base := testenv.EngineBase(t)
	hostDir, tmpName := t.TempDir(), "vm2image-hostile-"+filepath.Base(t.TempDir())
	repl := strings.NewReplacer("@DIR@", hostDir, "@TMP@", tmpName)
	url := testenv.DebRepo(t, "127.0.0.1:0", testenv.Deb{Name: "vm2image-evil", Version: "1.0", Postinst: repl.Replace(hostilePostinst)})
	vmTar := hostileVM(t, url, repl.Replace(hostileHooks), repl.Replace("post-invoke=sh -c 'echo pwned >/proc/1/root@DIR@/marker'\n"))

	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	cmd := exec.Command(bin, "convert", "-v", "tar:"+vmTar, "--base", "docker-daemon:"+base, "--builder", "chroot",
		"--output", filepath.Join(dir, "image.tar"), "--tag", "vm2image-test/hostile:latest", "--report", report,
		"--cache-dir", filepath.Join(dir, "cache"))
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	out, err := cmd.CombinedOutput()
	t.Logf("vm2image convert:\n%s", out)
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	for _, p := range []string{filepath.Join(hostDir, "marker"), filepath.Join("/tmp", tmpName)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the VM left %s on the host (%v)", p, err)
		}
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep convert.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Packages == nil || rep.Packages.Installed == 0 || slices.Contains(rep.Packages.Missing, "vm2image-evil=1.0") {
		t.Fatalf("the hostile package was not installed: %+v", rep.Packages)
	}
	for _, want := range []string{"/etc/apt/apt.conf.d/99hostile: APT::Update::Pre-Invoke", "/etc/apt/apt.conf.d/99hostile: DPkg::Pre-Invoke",
		"/etc/apt/apt.conf.d/99hostile: DPkg::Post-Invoke", "/etc/dpkg/dpkg.cfg.d/99hostile: post-invoke"} {
		if !slices.Contains(rep.Packages.ConfigDropped, want) {
			t.Errorf("report's config_dropped %q lacks %q", rep.Packages.ConfigDropped, want)
		}
		if !strings.Contains(string(out), "warning: VM configuration not carried into the build:") || !strings.Contains(string(out), want) {
			t.Errorf("the summary does not warn of %q", want)
		}
	}
}

// hostileVM writes a tar: source of the Debian fixture root with the repository at url, apt
// hooks in /etc/apt/apt.conf.d/99hostile, dpkg options in /etc/dpkg/dpkg.cfg.d/99hostile and
// vm2image-evil installed in its dpkg status.
func hostileVM(t *testing.T, url, hooks, dpkgCfg string) string {
	t.Helper()
	root := testenv.Overlay(t, testenv.Root(t, testenv.Bookworm))
	writeFile(t, filepath.Join(root, "etc/apt/sources.list"), "deb [trusted=yes] "+url+" ./\n")
	writeFile(t, filepath.Join(root, "etc/apt/apt.conf.d/99hostile"), hooks)
	writeFile(t, filepath.Join(root, "etc/dpkg/dpkg.cfg.d/99hostile"), dpkgCfg)
	status, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	status = append(status, []byte("\nPackage: vm2image-evil\nStatus: install ok installed\nPriority: optional\n"+
		"Maintainer: vm2image tests <tests@example.org>\nArchitecture: all\nVersion: 1.0\nDescription: test package\n")...)
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), string(status))
	vmTar := filepath.Join(t.TempDir(), "vm.tar")
	if out, err := exec.Command("tar", "-C", root, "--numeric-owner", "-cf", vmTar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar of the VM: %v\n%s", err, out)
	}
	return vmTar
}

// buildVM2Image builds the vm2image binary for the test.
func buildVM2Image(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vm2image")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building vm2image: %v\n%s", err, out)
	}
	return bin
}
