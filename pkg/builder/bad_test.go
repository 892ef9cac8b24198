package builder

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// smallVM narrows the fixture VM to the base's packages plus the dependency closure of roots,
// so that the bad-input tests install little.
func smallVM(f *fixture, roots ...string) *pkgmgr.DB {
	g := pkgmgr.NewGraph(f.vm, pkgmgr.GraphOptions{})
	keep := map[int]bool{}
	var queue []int
	for i, p := range g.Pkgs {
		for _, r := range roots {
			if p.Name == r {
				queue = append(queue, i)
			}
		}
	}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		if keep[i] {
			continue
		}
		keep[i] = true
		queue = append(queue, g.Out[i]...)
	}
	inBase := map[string]bool{}
	for _, p := range f.base.Packages {
		inBase[p.Name] = true
	}
	db := &pkgmgr.DB{Manager: f.vm.Manager}
	for i, p := range f.vm.Packages {
		if keep[i] || inBase[p.Name] {
			db.Packages = append(db.Packages, p)
		}
	}
	return db
}

// TestBuildMissingVersions: a VM package pinned to a version the repository does not have, and
// a package the repository never had, are reported Missing; everything else is installed.
func TestBuildMissingVersions(t *testing.T) {
	f := newFixture(t)
	f.vm = smallVM(f, "nginx-light", "openssh-server")
	for i, p := range f.vm.Packages {
		if p.Name == "nginx-light" {
			f.vm.Packages[i].Version = "1.22.1-9+vm2image.gone"
		}
	}
	f.vm.Packages = append(f.vm.Packages, pkgmgr.Package{Name: "vm2image-gone", Version: "1.0-1", Arch: "amd64", Status: "install ok installed"})
	f.replan(t)
	opts := testOptions(t, Chroot)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, cleanup, err := Build(ctx, f.input(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	var missing []string
	for _, p := range res.Missing {
		missing = append(missing, p.Name+"="+p.Version)
	}
	if got, want := strings.Join(missing, " "), "nginx-light=1.22.1-9+vm2image.gone vm2image-gone=1.0-1"; got != want {
		t.Errorf("Missing = %q, want %q", got, want)
	}
	if len(res.VersionDiffers) > 0 {
		t.Errorf("VersionDiffers = %v, want none", res.VersionDiffers)
	}
	t.Logf("errors: %q", res.Errors)
	installed := dpkgLines(t, res.Root)
	for _, p := range f.vm.Packages {
		if p.Name == "nginx-light" || p.Name == "vm2image-gone" {
			continue
		}
		if got, want := installed[p.Name+":"+p.Arch], p.Name+" "+p.Version+" "+p.Arch; got != want {
			t.Errorf("built root has %q, want %q", got, want)
		}
	}
	// Packages gone from the repository give the same answer next time: the layer is cached.
	if entries, _ := listEntries(opts.CacheDir); len(entries) != 1 {
		t.Errorf("cache holds %d entries, want 1", len(entries))
	}
}

// TestBuildUnreachableRepository: a repository that does not answer ends the build quickly with
// errors that say so and nothing installed; the layer is not cached. Repository paths that
// would leave the root are not carried, and are reported.
func TestBuildUnreachableRepository(t *testing.T) {
	f := newFixture(t)
	f.vm = smallVM(f, "openssh-server")
	f.replan(t)
	f.repo = map[string][]byte{
		"/etc/apt/sources.list": []byte("deb http://127.0.0.1:9/debian bookworm main\n"),
		"relative/sources.list": []byte("x"),
		"/../../escape":         []byte("x"),
	}
	opts := testOptions(t, Chroot)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	res, cleanup, err := Build(ctx, f.input(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	took := time.Since(start)
	t.Logf("took %s; errors: %q", took, res.Errors)
	if took > 2*time.Minute {
		t.Errorf("build with an unreachable repository took %s", took)
	}
	all := strings.Join(res.Errors, "\n")
	for _, want := range []string{"127.0.0.1", "update indexes"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors do not mention %q", want)
		}
	}
	var dropped []string
	for _, d := range res.ConfigDropped {
		dropped = append(dropped, d.String())
	}
	for _, want := range []string{"relative/sources.list: (file)", "/../../escape: (file)"} {
		if !slices.Contains(dropped, want) {
			t.Errorf("ConfigDropped %q lacks %q", dropped, want)
		}
	}
	if _, err := os.Stat("/escape"); err == nil {
		t.Errorf("a repository file was written outside the root")
	}
	if got, want := len(res.Installed), len(f.base.Packages); got != want {
		t.Errorf("%d packages installed, want the base's %d", got, want)
	}
	if got, want := len(res.Missing), len(f.vm.Packages)-len(f.base.Packages); got != want {
		t.Errorf("%d packages missing, want %d", got, want)
	}
	if entries, _ := listEntries(opts.CacheDir); len(entries) != 0 {
		t.Errorf("a build whose repository did not answer was cached")
	}
	if _, err := os.Stat(res.LayerPath); err != nil {
		t.Errorf("layer of the uncached build: %v", err)
	}
}

// TestBuildRefusesBadInput: input that cannot build gives a clear error before anything runs.
func TestBuildRefusesBadInput(t *testing.T) {
	testenv.RequireRoot(t)
	broken := t.TempDir()
	if err := os.MkdirAll(filepath.Join(broken, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, "etc/os-release"), []byte("ID=debian\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := &pkgmgr.DB{Manager: pkgmgr.Dpkg, Packages: []pkgmgr.Package{{Name: "hello", Version: "2.10-3", Arch: "amd64"}}}
	plan, err := pkgmgr.NewPlan(vm, nil, pkgmgr.OSInfo{ID: "debian"}, pkgmgr.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := Input{BaseRoot: broken, BaseDigest: "sha256:x", VM: vm, Plan: plan}
	for _, tc := range []struct {
		name string
		in   func(Input) Input
		opts Options
		want string
	}{
		{"no apt-get", func(in Input) Input { return in }, Options{}, "has no apt-get"},
		{"no plan", func(in Input) Input { in.Plan = nil; return in }, Options{}, "no install plan"},
		{"no VM", func(in Input) Input { in.VM = nil; return in }, Options{}, "no VM package database"},
		{"no digest", func(in Input) Input { in.BaseDigest = ""; return in }, Options{}, "no base digest"},
		{"no base root", func(in Input) Input { in.BaseRoot = filepath.Join(broken, "nope"); return in }, Options{}, "reading base root"},
		{"docker without image", func(in Input) Input { return in }, Options{Backend: Docker}, "no base image"},
		{"unknown backend", func(in Input) Input { return in }, Options{Backend: "lxc"}, "unknown builder backend"},
		{"unknown fsync method", func(in Input) Input { return in }, Options{NoFsyncMethod: "nope"}, "unknown way"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.CacheDir = t.TempDir()
			_, _, err := Build(context.Background(), tc.in(good), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}
