package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
)

// rpmVM is a writable view of one of the test RPM distribution's VMs whose yum.repos.d names
// the repository at repoURL.
func rpmVM(t *testing.T, lower, repoURL string) string {
	t.Helper()
	root := testenv.Overlay(t, lower)
	if err := os.MkdirAll(filepath.Join(root, "etc/yum.repos.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc/yum.repos.d/test.repo"),
		"[test]\nname=vm2image test repository\nbaseurl="+repoURL+"\ngpgcheck=0\nenabled=1\n")
	return root
}

// convertDir converts dir:root onto base and returns the report and the summary printed.
func convertDir(t *testing.T, root, base, tag string) (*convert.Report, string) {
	t.Helper()
	return convertDirWith(t, root, base, tag, nil)
}

// convertDirWith is convertDir with options changed by with (nil: none).
func convertDirWith(t *testing.T, root, base, tag string, with func(*convertOptions)) (*convert.Report, string) {
	t.Helper()
	t.Setenv("VM2IMAGE_INIT", testenv.InitBinary(t))
	var o convertOptions
	o.load, o.tag, o.base = true, tag, "docker-daemon:"+base
	o.format, o.builder, o.strategy, o.transfer, o.compression = "docker-archive", "chroot", "checksum", "diff", "gzip"
	o.output = filepath.Join(t.TempDir(), "vm.tar")
	o.report = filepath.Join(t.TempDir(), "report.json")
	o.cacheDir = convertCacheDir()
	if with != nil {
		with(&o)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	var out, errOut bytes.Buffer
	if err := runConvert(context.Background(), o, "dir:"+root, &out, &errOut); err != nil {
		t.Fatalf("convert: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	t.Logf("convert:\n%s", out.String())
	b, err := os.ReadFile(o.report)
	if err != nil {
		t.Fatal(err)
	}
	var rep convert.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep, out.String()
}

// rpmList is the package list of the root as the real rpm reads it.
func rpmList(t *testing.T, root string) string {
	t.Helper()
	return run(t, "rpm", "--root="+root, "--dbpath=/var/lib/rpm", "-qa", "--qf", "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\n")
}

func sortedLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// checkRPMImage checks the converted image against the VM with rpm's package list.
func checkRPMImage(t *testing.T, vmRoot, tag string) {
	t.Helper()
	checkImage(t, vmRoot, tag, "rpm -qa", rpmList)
}

// checkImage checks the converted image against the VM: the package list the real installer
// reads (list), the tree verify compares, and the service answering in a container.
func checkImage(t *testing.T, vmRoot, tag, what string, list func(*testing.T, string) string) {
	t.Helper()
	var vout bytes.Buffer
	err := runVerify(context.Background(), verifyOptions{maxDiffs: 50, cacheDir: convertCacheDir()}, "docker-daemon:"+tag, "dir:"+vmRoot, &vout)
	if err != nil {
		t.Errorf("verify: %v\n%s", err, vout.String())
	}
	// After verify: rpm touches the database's -shm file even to read it.
	if got, want := sortedLines(list(t, exportImage(t, tag))), sortedLines(list(t, vmRoot)); got != want {
		t.Errorf("%s in the image:\n%s\nin the VM:\n%s", what, got, want)
	}
	id := strings.TrimSpace(run(t, "docker", "run", "-d", tag))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	url := fmt.Sprintf("http://127.0.0.1:%d/", testenv.RPMDistPort)
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err := exec.Command("docker", "exec", id, "wget", "-qO-", url).CombinedOutput()
		if got = string(out); err == nil {
			break
		}
	}
	if got != "hello from webd\n" {
		logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
		t.Errorf("webd in the container answers %q, want the VM's page\n%s", got, logs)
	}
	if out := run(t, "docker", "exec", id, "sh", "-c", "ps -o user,args | grep '[h]ttpd'"); !strings.HasPrefix(strings.TrimSpace(out), "app") {
		t.Errorf("webd does not run as the user its package's %%pre made: %q", out)
	}
}

// TestConvertRPMOutside converts the test RPM distribution's VM onto a base that has no
// installer (only filesystem and shell): the host's dnf, run in the build sandbox with
// --installroot, installs the VM's packages at their exact versions (libfoo's older epoch
// version, the app-core/app-plugin cycle, %pre-made user), and the image equals the VM.
func TestConvertRPMOutside(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/rpmbase:bare", d.Key)
	vm := rpmVM(t, d.VM, testenv.ServeDir(t, d.Repo))
	rep, summary := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/rpm-outside:%d", os.Getpid()))
	p := rep.Packages
	if p == nil || p.Skipped != "" {
		t.Fatalf("no packages layer: %+v", p)
	}
	if !strings.Contains(p.Installer, "from outside") || !strings.Contains(summary, "installed:") {
		t.Errorf("installer %q: want the host's dnf from outside the base root", p.Installer)
	}
	if len(p.Missing)+len(p.VersionDiffers)+len(p.Errors) > 0 {
		t.Errorf("the installer did not install every VM package at its version: missing %v, differs %v, errors %v", p.Missing, p.VersionDiffers, p.Errors)
	}
	if p.Installed != p.VM || p.LayerBytes < 1<<10 {
		t.Errorf("the build root holds %d packages (layer %d bytes), the VM %d", p.Installed, p.LayerBytes, p.VM)
	}
	checkRPMImage(t, vm, rep.Image.Tag)
	// dnf keeps install reasons in its history database, not in rpm's: the VM's comes in the
	// diff layer, and dnf in the image reads the VM's user-installed packages.
	home := filepath.Join(filepath.Dir(d.Repo), "home")
	if got, want := dnfUserInstalled(t, exportImage(t, rep.Image.Tag), home), dnfUserInstalled(t, vm, home); got != want || !strings.Contains(want, "webd-1.0-3") {
		t.Errorf("dnf history userinstalled in the image:\n%s\nin the VM:\n%s", got, want)
	}
}

// dnfUserInstalled is what the host's dnf lists as installed by the user in root (home holds
// the .rpmmacros naming the roots' rpmdb path).
func dnfUserInstalled(t *testing.T, root, home string) string {
	t.Helper()
	cmd := exec.Command("dnf", "-q", "--installroot="+root, "--releasever=40", "--noplugins", "--setopt=reposdir=/dev/null", "history", "userinstalled")
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dnf history userinstalled: %v\n%s", err, out)
	}
	return sortedLines(string(out))
}

// TestConvertRPMFailures converts VMs whose packages cannot all be reinstalled: one holds a
// package the repository lacks (orphan) and one whose %pre fails (badpre); another VM names a
// repository that does not answer. Each gives a clear report line, and the image still equals
// the VM: the diff layer carries the files.
func TestConvertRPMFailures(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/rpmbase:bare", d.Key)
	repo := testenv.ServeDir(t, d.Repo)
	t.Run("missing and failing scriptlet", func(t *testing.T) {
		vm := rpmVM(t, d.BadVM, repo)
		rep, summary := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/rpm-bad:%d", os.Getpid()))
		p := rep.Packages
		if !strings.Contains(strings.Join(p.Missing, " "), "orphan=1.0-1") || !strings.Contains(summary, "not in the repository: ") {
			t.Errorf("orphan, which the repository lacks, is not reported missing: %v", p.Missing)
		}
		if !strings.Contains(strings.Join(p.Errors, "\n"), "PREIN scriptlet in rpm package badpre") || !strings.Contains(summary, "packages problem:") {
			t.Errorf("badpre's failing %%pre is not reported: %v", p.Errors)
		}
		checkRPMImage(t, vm, rep.Image.Tag)
	})
	t.Run("unreachable repository", func(t *testing.T) {
		vm := rpmVM(t, d.VM, "http://127.0.0.1:1/")
		rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/rpm-norepo:%d", os.Getpid()))
		if errs := strings.Join(rep.Packages.Errors, "\n"); !strings.Contains(errs, "a repository did not answer") {
			t.Errorf("the unreachable repository is not reported: %v", rep.Packages.Errors)
		}
		checkRPMImage(t, vm, rep.Image.Tag)
	})
}

// TestConvertRPMConfigAttack is a VM whose dnf configuration asks for a plugin of its own
// (plugins, pluginpath, pluginconfpath) that would write into the build root: the keys are
// dropped and reported, and the plugin never runs.
func TestConvertRPMConfigAttack(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/rpmbase:bare", d.Key)
	vm := rpmVM(t, d.VM, testenv.ServeDir(t, d.Repo))
	writeFile(t, filepath.Join(vm, "etc/dnf/dnf.conf"), "[main]\nplugins=1\npluginpath=/target/etc/dnf/vars\npluginconfpath=/target/etc/dnf/vars\ninstall_weak_deps=False\n")
	// /etc/dnf/vars is carried whole (variables are data): the plugin hides there, and the
	// configuration points dnf at the builder's documented mount point of the root.
	if err := os.MkdirAll(filepath.Join(vm, "etc/dnf/vars"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(vm, "etc/dnf/vars/evil.conf"), "[main]\nenabled=1\n")
	writeFile(t, filepath.Join(vm, "etc/dnf/vars/evil.py"), `import dnf, os
class Evil(dnf.Plugin):
    name = "evil"
    def __init__(self, base, cli):
        super().__init__(base, cli)
        for d in ("/target", "/"):
            try:
                open(os.path.join(d, "pwned-by-plugin"), "w").write("pwned")
            except OSError:
                pass
`)
	rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/rpm-attack:%d", os.Getpid()))
	dropped := strings.Join(rep.Packages.ConfigDropped, " ") + " "
	for _, k := range []string{"plugins", "pluginpath", "pluginconfpath"} {
		if !strings.Contains(dropped, "/etc/dnf/dnf.conf: [main] "+k+" ") {
			t.Errorf("%s of the VM's dnf.conf is not reported dropped: %v", k, rep.Packages.ConfigDropped)
		}
	}
	// The diff layer whites out what the VM lacks: look in the packages layer itself.
	if layerHolds(t, filepath.Join(convertCacheDir(), "layers", rep.Packages.CacheKey, "layer.tar"), "pwned-by-plugin") {
		t.Error("the VM's dnf plugin ran in the build")
	}
	if _, err := os.Stat("/pwned-by-plugin"); err == nil {
		t.Error("the VM's dnf plugin wrote on the host")
	}
	if len(rep.Packages.Missing)+len(rep.Packages.Errors) > 0 {
		t.Errorf("the build failed: %v %v", rep.Packages.Missing, rep.Packages.Errors)
	}
}

// layerHolds reports whether the layer tar at p has an entry named name.
func layerHolds(t *testing.T, p, name string) bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("opening the packages layer: %v", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if strings.TrimPrefix(path.Clean(h.Name), "/") == name {
			return true
		}
	}
}

// TestConvertRPMInside converts the same VM onto a base that carries dnf: dnf runs inside
// the base root, in the build sandbox, and the image equals the VM.
func TestConvertRPMInside(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	root := testenv.RPMDistInstBase(t, d)
	base := testenv.ImportRoot(t, root, "vm2image-test/rpmbase:dnf", d.Key+"-"+filepath.Base(root))
	vm := rpmVM(t, d.VM, testenv.ServeDir(t, d.Repo))
	rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/rpm-inside:%d", os.Getpid()))
	p := rep.Packages
	if p == nil || p.Skipped != "" {
		t.Fatalf("no packages layer: %+v", p)
	}
	if !strings.Contains(p.Installer, "in the base root (dnf)") {
		t.Errorf("installer %q: want the base's own dnf", p.Installer)
	}
	if len(p.Missing)+len(p.VersionDiffers)+len(p.Errors) > 0 {
		t.Errorf("the installer did not install every VM package at its version: missing %v, differs %v, errors %v", p.Missing, p.VersionDiffers, p.Errors)
	}
	checkRPMImage(t, vm, rep.Image.Tag)
}
