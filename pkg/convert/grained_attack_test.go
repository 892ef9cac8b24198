package convert

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// TestAttackPayloadKeyLinkCollision: a hostile base image whose directory links, written out
// as "name->target" lines, read the same as a merged-/usr base's ("bin" -> a directory named
// "usr/bin\nlib->usr/lib" in it) converts a package first; a conversion on the real merged-/usr
// base that installs the same .deb must get a payload layer made for its own links (the
// package's files under usr/bin and usr/lib), not the hostile base's cached one (a real lib/
// directory over the base's lib link, the tool at a name with a newline).
func TestAttackPayloadKeyLinkCollision(t *testing.T) {
	testenv.RequireCommands(t, "dpkg-deb")
	archives := t.TempDir()
	pkg := pkgmgr.Package{Name: "tool", Version: "1.0", Arch: "all"}
	buildToolDeb(t, filepath.Join(archives, debName(pkg)))

	hostile := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(hostile, "usr", "bin\nlib->usr", "lib"), 0o755))
	must(t, os.Symlink("usr/bin\nlib->usr/lib", filepath.Join(hostile, "bin")))
	legit := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib"} {
		must(t, os.MkdirAll(filepath.Join(legit, d), 0o755))
	}
	must(t, os.Symlink("usr/bin", filepath.Join(legit, "bin")))
	must(t, os.Symlink("usr/lib", filepath.Join(legit, "lib")))

	cacheDir := t.TempDir()
	layerOf := func(base string) []string {
		r := &run{opts: Options{CacheDir: cacheDir, Warnf: t.Logf, Notef: t.Logf, Logf: t.Logf}, baseDir: base}
		defer r.close()
		ps, err := r.payloads(context.Background(), pkgmgr.Dpkg, archives, []pkgmgr.Package{pkg}, &Grained{})
		if err != nil || len(ps) != 1 {
			t.Fatalf("payloads: %v (%d)", err, len(ps))
		}
		return tarNames(t, ps[0].path)
	}
	layerOf(hostile)
	got := layerOf(legit)
	want := []string{"usr/bin/tool", "usr/lib/libtool.so"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("payload layer on the merged-/usr base lacks %q (the hostile base's entry was reused): %q", w, got)
		}
	}
}

func (r *run) close() {
	for _, c := range r.cleanup {
		_ = c()
	}
}

// buildToolDeb makes a .deb shipping /bin/tool and /lib/libtool.so, as packages built before
// merged /usr do.
func buildToolDeb(t *testing.T, out string) {
	t.Helper()
	src := t.TempDir()
	for name, body := range map[string]string{
		"DEBIAN/control": "Package: tool\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n",
		"bin/tool":       "#!/bin/sh\n",
		"lib/libtool.so": "lib",
	} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755))
		must(t, os.WriteFile(filepath.Join(src, name), []byte(body), 0o755))
	}
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", src, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, b)
	}
}

// TestGrainedConfigRootFoundAgain: two conversions with the same base and the same payloads
// (one of them bundled, in each conversion's own work directory) share one cached base+payloads
// root; a root per conversion would fill the cache with a copy of the base each time.
func TestGrainedConfigRootFoundAgain(t *testing.T) {
	testenv.RequireCommands(t, "dpkg-deb", "cp")
	archives := t.TempDir()
	pkg := pkgmgr.Package{Name: "tool", Version: "1.0", Arch: "all"}
	buildToolDeb(t, filepath.Join(archives, debName(pkg)))
	base := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(base, "etc"), 0o755))
	cacheDir := t.TempDir()
	for range 2 {
		r := &run{opts: Options{CacheDir: cacheDir, Warnf: t.Logf, Notef: t.Logf, Logf: t.Logf}, baseDir: base,
			oldDir: base, work: t.TempDir(), base: &image.Base{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}}}
		ps, err := r.payloads(context.Background(), pkgmgr.Dpkg, archives, []pkgmgr.Package{pkg}, &Grained{})
		if err != nil || len(ps) != 1 {
			t.Fatalf("payloads: %v (%d)", err, len(ps))
		}
		bundle := filepath.Join(r.work, "packages-bundle.layer.tar")
		_, _, err = writeBundle(bundle, ps)
		must(t, err)
		if _, err := r.configLayer(context.Background(), []string{bundle}, []string{"bundle " + ps[0].info.DiffID}); err != nil {
			t.Fatal(err)
		}
		r.close()
	}
	des, err := os.ReadDir(filepath.Join(cacheDir, "roots"))
	must(t, err)
	var roots []string
	for _, de := range des {
		if strings.HasPrefix(de.Name(), "payloads-") && !strings.HasSuffix(de.Name(), ".lock") {
			roots = append(roots, de.Name())
		}
	}
	if len(roots) != 1 {
		t.Errorf("base+payloads roots in the cache after two conversions: %q", roots)
	}
}
