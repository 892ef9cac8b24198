package convert

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// TestBaseDirLinks: merged-/usr links are found; links that climb out of the base (a hostile
// base image) resolve inside it or are left out, and a link to a file is no directory link.
func TestBaseDirLinks(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib", "run", "etc"} {
		must(t, os.MkdirAll(filepath.Join(base, d), 0o755))
	}
	must(t, os.MkdirAll(filepath.Join(base, "var"), 0o755))
	must(t, os.WriteFile(filepath.Join(base, "etc/file"), nil, 0o644))
	for link, target := range map[string]string{
		"bin":      "usr/bin",
		"lib":      "/usr/lib",
		"var/run":  "../run",
		"escape":   "../../../../etc", // cleaned inside the root: "etc"
		"tofile":   "etc/file",
		"dangling": "nowhere",
		"hostetc":  "/proc/self/root/etc", // nothing of the host: /proc is not in the base
	} {
		must(t, os.Symlink(target, filepath.Join(base, link)))
	}
	want := map[string]string{"bin": "usr/bin", "lib": "usr/lib", "var/run": "run", "escape": "etc"}
	if got := baseDirLinks(base); !cmp.Equal(got, want) {
		t.Errorf("baseDirLinks: %s", cmp.Diff(want, got))
	}
}

// TestSplitOwn: within the budget the largest payloads (or a plan's choice) get their own
// layers, one is kept for the bundle, and both lists are in name order.
func TestSplitOwn(t *testing.T) {
	var ps []payloadLayer
	for i, n := range []string{"a", "b", "c", "d", "e"} {
		p := payloadLayer{pkg: pkgmgr.Package{Name: n, Version: "1", Arch: "all"}}
		p.info.Size = int64(i+1) * 100
		ps = append(ps, p)
	}
	names := func(l []payloadLayer) (s []string) {
		for _, p := range l {
			s = append(s, p.pkg.Name)
		}
		return s
	}
	own, bundle := splitOwn(ps, 3, nil)
	if !cmp.Equal(names(own), []string{"d", "e"}) || !cmp.Equal(names(bundle), []string{"a", "b", "c"}) {
		t.Errorf("by size: own %v, bundle %v", names(own), names(bundle))
	}
	own, bundle = splitOwn(ps, 10, map[string]bool{"a 1 all": true})
	if !cmp.Equal(names(own), []string{"a"}) || len(bundle) != 4 {
		t.Errorf("by plan: own %v, bundle %v", names(own), names(bundle))
	}
	if own, _ := splitOwn(ps, 100, nil); len(own) != 5 {
		t.Errorf("room for all: %d own", len(own))
	}
}
