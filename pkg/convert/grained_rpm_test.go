package convert

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// buildToolRPM makes with rpmbuild an .rpm of the package name 1.0-2.x86_64 shipping /bin/tool
// and writes it to out.
func buildToolRPM(t *testing.T, name, out string) {
	t.Helper()
	testenv.RequireCommands(t, "rpmbuild")
	dir := t.TempDir()
	spec := "Name: " + name + "\nVersion: 1.0\nRelease: 2\nSummary: t\nLicense: MIT\nBuildArch: x86_64\n%description\nt\n" +
		"%install\nmkdir -p %{buildroot}/bin\nprintf '#!/bin/sh\\n' > %{buildroot}/bin/tool\nchmod 755 %{buildroot}/bin/tool\n" +
		"%files\n/bin/tool\n"
	must(t, os.WriteFile(filepath.Join(dir, "t.spec"), []byte(spec), 0o644))
	cmd := exec.Command("rpmbuild", "-bb", "--define", "_topdir "+dir, "--define", "__os_install_post %{nil}",
		"--define", "_build_id_links none", "--define", "debug_package %{nil}", filepath.Join(dir, "t.spec"))
	cmd.Env = append(os.Environ(), "HOME="+dir, "LC_ALL=C")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, b)
	}
	must(t, os.Rename(filepath.Join(dir, "RPMS/x86_64", name+"-1.0-2.x86_64.rpm"), out))
}

// TestRPMPayloadLayers: an .rpm in the archive share (named as dnf and zypper name it, without
// the epoch) becomes a payload layer, its files through the base's links, the same blob from two
// conversions with their own caches, under a key of its own format.
func TestRPMPayloadLayers(t *testing.T) {
	archives := t.TempDir()
	buildToolRPM(t, "tool", filepath.Join(archives, "tool-1.0-2.x86_64.rpm"))
	pkg := pkgmgr.Package{Name: "tool", Version: "1.0-2", Arch: "x86_64"}
	base := mergedUsrBase(t)
	var ids []string
	for range 2 {
		r := &run{opts: Options{CacheDir: t.TempDir(), Warnf: t.Logf, Notef: t.Logf, Logf: t.Logf}, baseDir: base}
		ps, err := r.payloads(context.Background(), pkgmgr.RPM, archives, []pkgmgr.Package{pkg}, &Grained{})
		if err != nil || len(ps) != 1 {
			t.Fatalf("payloads: %v (%d)", err, len(ps))
		}
		if got := tarNames(t, ps[0].path); !slices.Equal(got, []string{"usr/bin/tool"}) {
			t.Errorf("payload layer entries %q", got)
		}
		if !strings.HasPrefix(ps[0].key, "payload-rpm-") {
			t.Errorf("key %q is not an rpm payload key", ps[0].key)
		}
		ids = append(ids, ps[0].info.DiffID)
		r.close()
	}
	if ids[0] != ids[1] {
		t.Errorf("the same package gave two layers: %v", ids)
	}
}

// TestAttackRPMPackageClaimsAnother: the archive share's file named for tool 1.0-2 is another
// package: it gets no payload layer and its package goes to the configuration layer.
func TestAttackRPMPackageClaimsAnother(t *testing.T) {
	archives := t.TempDir()
	buildToolRPM(t, "evil", filepath.Join(archives, "tool-1.0-2.x86_64.rpm"))
	pkg := pkgmgr.Package{Name: "tool", Version: "1.0-2", Arch: "x86_64"}
	r := &run{opts: Options{CacheDir: t.TempDir(), Warnf: t.Logf, Notef: t.Logf, Logf: t.Logf}, baseDir: mergedUsrBase(t)}
	defer r.close()
	g := &Grained{}
	ps, err := r.payloads(context.Background(), pkgmgr.RPM, archives, []pkgmgr.Package{pkg}, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 0 || !slices.Equal(g.NoArchive, []string{"tool=1.0-2"}) {
		t.Errorf("a file claiming another package: %d layers, no archive %q", len(ps), g.NoArchive)
	}
}

// TestPayloadKeysPerFormat: a payload key names its package format: a registry record's key
// of one format is not taken for another's.
func TestPayloadKeysPerFormat(t *testing.T) {
	sum, params := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	for _, m := range []pkgmgr.Manager{pkgmgr.Dpkg, pkgmgr.Pacman, pkgmgr.RPM} {
		key := payloadKey(m, sum, params)
		for _, other := range []pkgmgr.Manager{pkgmgr.Dpkg, pkgmgr.Pacman, pkgmgr.RPM} {
			if got := isPayloadKey(other, key); got != (m == other) {
				t.Errorf("%s key %q taken as %s's: %v", m, key, other, got)
			}
		}
	}
	if payloadKey(pkgmgr.Dpkg, sum, params) != "payload-"+sum[:32]+"-"+params[:12] {
		t.Error("dpkg payload keys changed: every cached payload would be made again")
	}
}
