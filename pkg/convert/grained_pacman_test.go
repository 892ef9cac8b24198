package convert

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// writePacmanPkg writes a .pkg.tar.zst whose .PKGINFO says name and version, shipping
// bin/tool (through a merged-/usr base's link: usr/bin/tool).
func writePacmanPkg(t *testing.T, path, name, version string) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	zw, err := zstd.NewWriter(f)
	must(t, err)
	tw := tar.NewWriter(zw)
	for _, e := range []struct {
		h    tar.Header
		body string
	}{
		{tar.Header{Name: ".PKGINFO", Typeflag: tar.TypeReg, Mode: 0o644}, "pkgname = " + name + "\npkgver = " + version + "\narch = x86_64\n"},
		{tar.Header{Name: ".MTREE", Typeflag: tar.TypeReg, Mode: 0o644}, "not a file of the package"},
		{tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "bin/tool", Typeflag: tar.TypeReg, Mode: 0o755}, "#!/bin/sh\n"},
	} {
		e.h.Size = int64(len(e.body))
		must(t, tw.WriteHeader(&e.h))
		_, err := tw.Write([]byte(e.body))
		must(t, err)
	}
	must(t, tw.Close())
	must(t, zw.Close())
}

// mergedUsrBase is a base root with bin -> usr/bin.
func mergedUsrBase(t *testing.T) string {
	base := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(base, "usr/bin"), 0o755))
	must(t, os.Symlink("usr/bin", filepath.Join(base, "bin")))
	return base
}

// TestPacmanPayloadLayers: a pacman package file in the archive share becomes a payload layer
// (its files through the base's links, its metadata members left out), the same blob from two
// conversions with their own caches, under a key of its own format.
func TestPacmanPayloadLayers(t *testing.T) {
	archives := t.TempDir()
	pkg := pkgmgr.Package{Name: "tool", Version: "1:1.0-2", Arch: "x86_64"}
	writePacmanPkg(t, filepath.Join(archives, "tool-1:1.0-2-x86_64.pkg.tar.zst"), "tool", "1:1.0-2")
	base := mergedUsrBase(t)
	var ids []string
	for range 2 {
		r := &run{opts: Options{CacheDir: t.TempDir(), Warnf: t.Logf, Notef: t.Logf, Logf: t.Logf}, baseDir: base}
		ps, err := r.payloads(context.Background(), pkgmgr.Pacman, archives, []pkgmgr.Package{pkg}, &Grained{})
		if err != nil || len(ps) != 1 {
			t.Fatalf("payloads: %v (%d)", err, len(ps))
		}
		if got := tarNames(t, ps[0].path); !slices.Equal(got, []string{"usr/bin/tool"}) {
			t.Errorf("payload layer entries %q", got)
		}
		if !strings.HasPrefix(ps[0].key, "payload-pacman-") {
			t.Errorf("key %q is not a pacman payload key", ps[0].key)
		}
		ids = append(ids, ps[0].info.DiffID)
		r.close()
	}
	if ids[0] != ids[1] {
		t.Errorf("the same package gave two layers: %v", ids)
	}
}

// TestAttackPacmanPackageClaimsAnother: the archive share's file named for tool 1.0-2 is in
// fact another package (a hostile mirror's, or one planted under the name): it gets no payload
// layer and its package goes to the configuration layer.
func TestAttackPacmanPackageClaimsAnother(t *testing.T) {
	archives := t.TempDir()
	pkg := pkgmgr.Package{Name: "tool", Version: "1.0-2", Arch: "x86_64"}
	writePacmanPkg(t, filepath.Join(archives, "tool-1.0-2-x86_64.pkg.tar.zst"), "evil", "1.0-2")
	r := &run{opts: Options{CacheDir: t.TempDir(), Warnf: t.Logf, Notef: t.Logf, Logf: t.Logf}, baseDir: mergedUsrBase(t)}
	defer r.close()
	g := &Grained{}
	ps, err := r.payloads(context.Background(), pkgmgr.Pacman, archives, []pkgmgr.Package{pkg}, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 0 || !slices.Equal(g.NoArchive, []string{"tool=1.0-2"}) {
		t.Errorf("a file claiming another package: %d layers, no archive %q", len(ps), g.NoArchive)
	}
}
