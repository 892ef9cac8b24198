package convert

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/source"
)

var stamp = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// writeStamped writes content to root/name with a fixed mtime.
func writeStamped(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, stamp, stamp); err != nil {
		t.Fatal(err)
	}
}

// compare diffs the cached root old (through its digest index) with the VM tree vm, saves the
// index as a conversion does, and returns the changed paths and how many digests came from the
// index.
func compare(t *testing.T, r *run, old, vm string) ([]string, int64) {
	t.Helper()
	ot, err := r.openDigestTree(old, "pkg-test")
	if err != nil {
		t.Fatal(err)
	}
	defer ot.Close()
	nt, err := source.OpenDir(vm, "vm")
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	res, err := diff.Trees(context.Background(), ot, nt, diff.Options{Strategy: diff.Checksum})
	if err != nil {
		t.Fatal(err)
	}
	ot.save()
	var changed []string
	for _, c := range res.Changes {
		changed = append(changed, c.Path+"="+string(c.Kind))
	}
	return changed, ot.hits.Load()
}

func digestFixture(t *testing.T) (r *run, old, vm string) {
	digestRacy = 0 // the files were written just now; the racy window is fswalk's to test
	t.Cleanup(func() { digestRacy = fswalk.RacyWindow })
	r = &run{opts: Options{CacheDir: t.TempDir()}}
	old, vm = t.TempDir(), t.TempDir()
	for _, root := range []string{old, vm} {
		writeStamped(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
		writeStamped(t, root, "usr/bin/tool", "#!/bin/sh\necho tool\n")
	}
	for _, d := range []string{"etc", "usr/bin", "usr"} {
		for _, root := range []string{old, vm} {
			if err := os.Chtimes(filepath.Join(root, d), stamp, stamp); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The first comparison hashes both sides and fills the index; the second takes the cached
	// root's digests from it.
	if got, _ := compare(t, r, old, vm); len(got) != 0 {
		t.Fatalf("identical trees: changes %q", got)
	}
	if _, hits := compare(t, r, old, vm); hits != 2 {
		t.Fatalf("second comparison took %d digests from the index, want 2", hits)
	}
	return r, old, vm
}

// TestAttackAlteredCacheEntry: someone rewrites a file of the cached base+packages root after
// its digests were recorded, keeping its size and putting its mtime back, so that the VM's
// same-looking file passes as unchanged. The index must not vouch for the altered file: it is
// hashed again and the VM's file (the original contents) counts as modified.
func TestAttackAlteredCacheEntry(t *testing.T) {
	r, old, vm := digestFixture(t)
	writeStamped(t, old, "usr/bin/tool", "#!/bin/sh\nrm -rf /\n\n") // same size, same mtime
	got, hits := compare(t, r, old, vm)
	if want := []string{"usr/bin/tool=modified"}; !slices.Equal(got, want) {
		t.Errorf("after the cached file was altered: changes %q, want %q", got, want)
	}
	if hits != 1 {
		t.Errorf("%d digests from the index, want 1 (the untouched file only)", hits)
	}

	// A file renamed over the original (another inode, every time stamp copied) is caught too.
	p := filepath.Join(old, "etc/passwd")
	writeStamped(t, old, "etc/passwd.new", "evil:x:0:0:root:/root:/bin/bash\n"[:len("root:x:0:0:root:/root:/bin/bash\n")])
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(old, "etc"), stamp, stamp); err != nil {
		t.Fatal(err)
	}
	got, _ = compare(t, r, old, vm)
	if !slices.Contains(got, "etc/passwd=modified") {
		t.Errorf("after a file was renamed over the cached one: changes %q, want etc/passwd=modified", got)
	}

	// A corrupted index is an empty one: everything is hashed again, nothing fails.
	ip := filepath.Join(r.cacheRoot().Path("images"), "digests", "pkg-test.json")
	if err := os.WriteFile(ip, []byte(`{"usr/bin/tool": {"d": 12`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, hits = compare(t, r, old, vm); hits != 0 || !slices.Contains(got, "usr/bin/tool=modified") {
		t.Errorf("with a corrupted index: changes %q, %d hits; want usr/bin/tool=modified and 0 hits", got, hits)
	}
}

// TestChecksumCatchesSameSizeSameMtime: with the cached side answered from the index, a VM file
// whose contents changed while its size and mtime did not is still caught: the VM's side is
// always hashed.
func TestChecksumCatchesSameSizeSameMtime(t *testing.T) {
	r, old, vm := digestFixture(t)
	writeStamped(t, vm, "etc/passwd", "toor:x:0:0:root:/root:/bin/bash\n")
	if err := os.Chtimes(filepath.Join(vm, "etc"), stamp, stamp); err != nil {
		t.Fatal(err)
	}
	got, hits := compare(t, r, old, vm)
	if want := []string{"etc/passwd=modified"}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	if hits != 2 {
		t.Errorf("%d digests from the index, want 2: the cached side was hashed again", hits)
	}
}
