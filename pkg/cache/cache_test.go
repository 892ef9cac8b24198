package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGetBuildsOncePrivately: concurrent Gets of one key build once, in a private temporary
// directory; every caller holds the entry in use until it releases it.
func TestGetBuildsOncePrivately(t *testing.T) {
	root := Root(filepath.Join(t.TempDir(), "c"))
	d, err := root.Dir(Roots, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var builds atomic.Int32
	var wg sync.WaitGroup
	locks := make([]*Lock, 6)
	for i := range locks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, l, err := d.Get(context.Background(), "base-1", func(_ context.Context, tmp string) error {
				builds.Add(1)
				fi, err := os.Stat(tmp)
				if err != nil || fi.Mode().Perm() != PrivateMode {
					t.Errorf("building in %s of mode %v (%v), want 0700", tmp, fi.Mode().Perm(), err)
				}
				return os.WriteFile(filepath.Join(tmp, "f"), []byte("x"), 0o644)
			})
			if err != nil || dir != filepath.Join(d.Path, "base-1") {
				t.Errorf("Get = %q, %v", dir, err)
			}
			locks[i] = l
		}()
	}
	wg.Wait()
	if builds.Load() != 1 {
		t.Errorf("%d builds, want 1", builds.Load())
	}
	es, _ := root.List()
	if len(es) != 1 || !es[0].InUse {
		t.Fatalf("entries %+v, want base-1 in use", es)
	}
	for _, l := range locks {
		l.Release()
	}
	if es, _ := root.List(); es[0].InUse {
		t.Errorf("base-1 still in use after every release")
	}
}

// TestGetFailedFillLeavesNothing: a fill that fails leaves no entry and no temporary directory,
// and the next Get builds.
func TestGetFailedFillLeavesNothing(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	boom := errors.New("boom")
	if _, _, err := d.Get(context.Background(), "k", func(context.Context, string) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	left, _ := filepath.Glob(filepath.Join(d.Path, "k*"))
	if len(left) != 1 || filepath.Base(left[0]) != "k.lock" {
		t.Errorf("left %q, want only the lock", left)
	}
	_, l, err := d.Get(context.Background(), "k", func(context.Context, string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if _, _, err := d.Get(context.Background(), "../k", nil); err == nil {
		t.Error("a key that climbs was accepted")
	}
}

// TestPruneSkipsBuildInProgress: an entry whose exclusive lock is held is being rebuilt.
func TestPruneSkipsBuildInProgress(t *testing.T) {
	root := Root(t.TempDir())
	d, _ := root.Dir(Layers, nil, nil)
	hit, l, err := d.Acquire(context.Background(), "k")
	if err != nil || hit {
		t.Fatal(hit, err)
	}
	defer l.Release()
	tmp, _ := d.NewTemp("k")
	old := time.Now().Add(-time.Hour)
	_ = os.MkdirAll(filepath.Join(d.Path, "k"), 0o700) // a leftover being replaced
	_ = os.Chtimes(filepath.Join(d.Path, "k.lock"), old, old)
	removed, err := root.Prune(PruneOptions{OlderThan: time.Minute})
	if err != nil || len(removed) != 0 {
		t.Fatalf("Prune removed %+v (%v), want nothing", removed, err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("the build's temporary directory was removed: %v", err)
	}
}

// TestPackageArchivePartitions: builds share package files in partitions of the archive store
// (apt-archives/PARTITION/, each with its store lock); the list sees them (every package format,
// not temporary or other files), a prune removes old ones, and leaves alone a partition a build
// holds and the temporary files in it.
func TestPackageArchivePartitions(t *testing.T) {
	root := Root(t.TempDir())
	old := time.Now().Add(-48 * time.Hour)
	put := func(rel string) string {
		p := filepath.Join(root.Path(AptArchives), rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("package"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, rel := range []string{"p1/nginx_1.22_amd64.deb", "p1/foo-1.0-1.x86_64.rpm", "p1/bar-2-1-x86_64.pkg.tar.zst",
		"p1/notes.txt", "p1/.tmp-x-nginx_1.22_amd64.deb", "p2/held_1_all.deb", "p2/.tmp-y-held_1_all.deb", "top_1_all.deb"} {
		put(rel)
	}
	es, err := root.List()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range es {
		if e.Kind == AptArchives {
			keys = append(keys, e.Key)
		}
	}
	slices.Sort(keys)
	want := []string{"p1/bar-2-1-x86_64.pkg.tar.zst", "p1/foo-1.0-1.x86_64.rpm", "p1/nginx_1.22_amd64.deb", "p2/held_1_all.deb", "top_1_all.deb"}
	if !slices.Equal(keys, want) {
		t.Fatalf("listed %q, want %q", keys, want)
	}
	held, err := LockShared(context.Background(), filepath.Join(root.Path(AptArchives), "p2", StoreLock))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	removed, err := root.Prune(PruneOptions{OlderThan: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 4 {
		t.Errorf("removed %d entries, want 4 (all but the held partition's)", len(removed))
	}
	for rel, kept := range map[string]bool{"p1/nginx_1.22_amd64.deb": false, "p1/.tmp-x-nginx_1.22_amd64.deb": false,
		"p1/notes.txt": true, "p2/held_1_all.deb": true, "p2/.tmp-y-held_1_all.deb": true, "top_1_all.deb": false} {
		_, err := os.Stat(filepath.Join(root.Path(AptArchives), rel))
		if (err == nil) != kept {
			t.Errorf("%s: kept %v, want %v", rel, err == nil, kept)
		}
	}
}
