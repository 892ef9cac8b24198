package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
