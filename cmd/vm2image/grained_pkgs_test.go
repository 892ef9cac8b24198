package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
)

// convertGrainedTwice converts vm onto base twice with --package-layers grained, each time with
// a cache directory of its own (nothing of the first conversion is reused: the second installs
// and makes its payload layers again), loads each image into the engine, and checks both: a
// payload layer of its own for every package the VM adds to the base (want), none left to the
// configuration layer for want of a package file but those of later (installed by a later
// step, after package code ran in the build root: their files are not shared), the same package
// giving the same layer in both, and verify finding the image equal to the VM.
func convertGrainedTwice(t *testing.T, vm, base, name string, want, later []string, check func(t *testing.T, vm, tag string)) {
	t.Helper()
	var layers []map[string]string // package -> diffID
	for i := range 2 {
		cacheDir := t.TempDir()
		rep, _ := convertDirWith(t, vm, base, fmt.Sprintf("vm2image-test/%s-grained%d:%d", name, i, os.Getpid()), func(o *convertOptions) {
			o.packageLayers, o.cacheDir = string(convert.PackageLayersGrained), cacheDir
		})
		g := rep.Packages.Grained
		if g == nil {
			t.Fatalf("conversion %d: no grained layers: %+v", i, rep.Packages)
		}
		got := map[string]string{}
		for _, l := range g.Layers {
			got[l.Name] = l.DiffID
		}
		for _, w := range want {
			if got[w] == "" {
				t.Errorf("conversion %d: no payload layer for %s: layers %+v, without a package file %v", i, w, g.Layers, g.NoArchive)
			}
		}
		noArchive := slices.DeleteFunc(slices.Clone(g.NoArchive), func(p string) bool {
			n, _, _ := strings.Cut(p, "=")
			return slices.Contains(later, n)
		})
		if len(noArchive) > 0 {
			t.Errorf("conversion %d: packages without a package file: %v; the archive share holds %v", i, g.NoArchive, packageFiles(cacheDir))
		}
		roles := map[string]int{}
		for _, l := range rep.Image.Layers {
			roles[l.Role]++
		}
		if roles["package"] != g.OwnLayers || roles["packages-config"] != 1 || roles["packages"] != 0 {
			t.Errorf("conversion %d: layer roles %v", i, roles)
		}
		layers = append(layers, got)
		check(t, vm, rep.Image.Tag)
	}
	for _, w := range want {
		if layers[0][w] != layers[1][w] {
			t.Errorf("%s: payload layer %s in one conversion, %s in the other", w, layers[0][w], layers[1][w])
		}
	}
	if !slices.Equal(sortedKeys(layers[0]), sortedKeys(layers[1])) {
		t.Errorf("payload layers differ: %v and %v", layers[0], layers[1])
	}
}

// packageFiles lists the package files under dir.
func packageFiles(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() && (strings.HasSuffix(p, ".rpm") || strings.Contains(p, ".pkg.tar.")) {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestConvertPacmanGrained converts the test pacman distribution's VM with package-grained
// layers (the host's pacman from outside the base root): libfoo, app-core and webd each get a
// payload layer made from the package file pacman downloaded, the same in two conversions, and
// the image (loaded in the engine) equals the VM.
func TestConvertPacmanGrained(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildPacmanDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/pacmanbase:bare", d.Key)
	vm := pacmanVM(t, d.VM, testenv.ServeDir(t, d.Repo))
	convertGrainedTwice(t, vm, base, "pacman", []string{"libfoo", "app-core", "webd"}, nil, func(t *testing.T, vm, tag string) {
		checkImage(t, vm, tag, "pacman -Q", pacmanList)
	})
}

// rpmVMPackages are the packages the test RPM distribution's VM adds to its base but libfoo:
// the first install brings the repository's libfoo 2:1.1-1, and the second pass takes it back
// to the VM's 2:1.0-1, downloaded after package code ran in the build root: not shared, so its
// files come in the configuration layer.
var rpmVMPackages, rpmLater = []string{"app-core", "app-plugin", "webd"}, []string{"libfoo"}

// TestConvertRPMGrained converts the test RPM distribution's VM with package-grained layers
// (the host's dnf from outside the base root): each package the VM adds gets a payload layer
// made from the .rpm dnf downloaded (libfoo at its older epoch version), the same in two
// conversions, and the image (loaded in the engine) equals the VM.
func TestConvertRPMGrained(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/rpmbase:bare", d.Key)
	vm := rpmVM(t, d.VM, testenv.ServeDir(t, d.Repo))
	convertGrainedTwice(t, vm, base, "rpm", rpmVMPackages, rpmLater, func(t *testing.T, vm, tag string) { checkRPMImage(t, vm, tag) })
}

// TestConvertZypperGrained: the same VM named openSUSE Leap, installed by the host's zypper
// from outside the base root: payload layers from the .rpm files zypper downloaded.
func TestConvertZypperGrained(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	base := suseBase(t, d)
	vm := suseRoot(t, d.VM, testenv.ServeDir(t, d.Repo))
	convertGrainedTwice(t, vm, base, "zypper", rpmVMPackages, rpmLater, func(t *testing.T, vm, tag string) { checkRPMImage(t, vm, tag) })
}

// TestConvertGrainedInside: the same with the installer in the base root (pacman, dnf), run in
// the build sandbox: the package files it downloaded into the root's cache make the payloads.
func TestConvertGrainedInside(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	t.Run("pacman", func(t *testing.T) {
		d := testenv.BuildPacmanDist(t)
		root := testenv.PacmanInstBase(t, d)
		base := testenv.ImportRoot(t, root, "vm2image-test/pacmanbase:pacman", d.Key+"-"+filepath.Base(root))
		vm := pacmanVM(t, d.VM, testenv.ServeDir(t, d.Repo))
		convertGrainedTwice(t, vm, base, "pacman-inside", []string{"libfoo", "app-core", "webd"}, nil, func(t *testing.T, vm, tag string) {
			checkImage(t, vm, tag, "pacman -Q", pacmanList)
		})
	})
	t.Run("dnf", func(t *testing.T) {
		d := testenv.BuildRPMDist(t)
		root := testenv.RPMDistInstBase(t, d)
		base := testenv.ImportRoot(t, root, "vm2image-test/rpmbase:dnf", d.Key+"-"+filepath.Base(root))
		vm := rpmVM(t, d.VM, testenv.ServeDir(t, d.Repo))
		convertGrainedTwice(t, vm, base, "rpm-inside", rpmVMPackages, rpmLater, func(t *testing.T, vm, tag string) { checkRPMImage(t, vm, tag) })
	})
}
