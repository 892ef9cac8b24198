package builder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// makeEntry writes a complete cache entry of key, created at created, with a layer of size bytes.
func makeEntry(t *testing.T, dir, key string, created time.Time, size int) {
	t.Helper()
	tmp := filepath.Join(dir, key+".tmp-test")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, layerFile), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &meta{Version: metaVersion, Key: key, Created: created, BaseDigest: "sha256:base", Manager: pkgmgr.Dpkg,
		Packages: 3, LayerDiffID: "sha256:" + digest(key), LayerSize: int64(size)}
	if err := writeMeta(tmp, m); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, key)); err != nil {
		t.Fatal(err)
	}
}

// listEntries returns the keys of the valid entries of the layer cache dir.
func listEntries(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if de.IsDir() && validKey(de.Name()) {
			if _, err := readMeta(filepath.Join(dir, de.Name())); err == nil {
				out = append(out, de.Name())
			}
		}
	}
	return out, nil
}

// TestAcquireBuildsOnce: many callers of one key at once; exactly one gets the miss and builds,
// the others wait and get the entry it commits.
func TestAcquireBuildsOnce(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	var misses, hits atomic.Int32
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, l, err := acquire(ctx, dir, "k1")
			if err != nil {
				t.Error(err)
				return
			}
			defer l.release()
			if m != nil {
				hits.Add(1)
				return
			}
			misses.Add(1)
			time.Sleep(300 * time.Millisecond) // building
			tmp := filepath.Join(dir, "k1.tmp-x")
			_ = os.Mkdir(tmp, 0o755)
			_ = os.WriteFile(filepath.Join(tmp, layerFile), []byte("layer"), 0o644)
			if err := writeMeta(tmp, &meta{Version: metaVersion, Key: "k1", Created: time.Now(), LayerSize: 5}); err != nil {
				t.Error(err)
			}
			if err := commit(dir, "k1", tmp, l); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if misses.Load() != 1 || hits.Load() != n-1 {
		t.Errorf("%d misses and %d hits, want 1 and %d", misses.Load(), hits.Load(), n-1)
	}
}

// TestAcquireWaitEndsWithContext: a caller waiting for a build in progress gives up when its
// context ends.
func TestAcquireWaitEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	_, l, err := acquire(context.Background(), dir, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := acquire(ctx, dir, "k"); err == nil || !strings.Contains(err.Error(), "waiting for cache entry") {
		t.Fatalf("err = %v, want a wait that ended", err)
	}
}

func TestCacheKey(t *testing.T) {
	vm := &pkgmgr.DB{Manager: pkgmgr.Dpkg, Packages: []pkgmgr.Package{
		{Name: "a", Version: "1", Arch: "amd64"}, {Name: "b", Version: "2", Arch: "all"}}}
	plan, err := pkgmgr.NewPlan(vm, nil, pkgmgr.OSInfo{ID: "debian"}, pkgmgr.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := Input{BaseDigest: "sha256:1", VM: vm, Plan: plan,
		RepoFiles: map[string][]byte{"/etc/apt/sources.list": []byte("deb x"), "/etc/apt/trusted.gpg.d/k.asc": []byte("k")}}
	key := CacheKey(in)
	if !validKey(key) {
		t.Fatalf("key %q is not a valid cache key", key)
	}
	for i := 0; i < 20; i++ { // map order does not matter
		if k := CacheKey(in); k != key {
			t.Fatalf("CacheKey is not stable: %s, then %s", key, k)
		}
	}
	change := []func(*Input){
		func(in *Input) { in.BaseDigest = "sha256:2" },
		func(in *Input) { in.RepoFiles = map[string][]byte{"/etc/apt/sources.list": []byte("deb y")} },
		func(in *Input) {
			vm2 := &pkgmgr.DB{Manager: vm.Manager, Packages: append([]pkgmgr.Package{}, vm.Packages...)}
			vm2.Packages[0].Version = "1.1"
			in.VM = vm2
		},
	}
	for i, f := range change {
		in2 := in
		f(&in2)
		if CacheKey(in2) == key {
			t.Errorf("change %d does not change the key", i)
		}
	}
}
