package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/vm2image/vm2image/pkg/cache"
)

// fillCache makes a cache root with entries of every kind, each last used at the given age.
func fillCache(t *testing.T, root cache.Root, now time.Time) {
	t.Helper()
	keyed := func(k cache.Kind, key string, age time.Duration, size int) {
		d, err := root.Dir(k, nil, nil)
		must(t, err)
		hit, l, err := d.Acquire(context.Background(), key)
		must(t, err)
		if !hit {
			tmp, err := d.NewTemp(key)
			must(t, err)
			must(t, os.WriteFile(filepath.Join(tmp, "data"), make([]byte, size), 0o644))
			must(t, d.Commit(key, tmp, l))
		}
		l.Release()
		when := now.Add(-age)
		must(t, os.Chtimes(filepath.Join(d.Path, key+".lock"), when, when))
	}
	file := func(k cache.Kind, rel string, age time.Duration, size int) {
		p := filepath.Join(root.Path(k), rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o700))
		must(t, os.WriteFile(p, make([]byte, size), 0o644))
		when := now.Add(-age)
		must(t, os.Chtimes(p, when, when))
	}
	day := 24 * time.Hour
	keyed(cache.Layers, "layer-old", 40*day, 3<<20)
	keyed(cache.Layers, "layer-inuse", 50*day, 1<<20)
	keyed(cache.Layers, "layer-new", time.Hour, 1<<20)
	keyed(cache.Roots, "base-old", 45*day, 2<<20)
	keyed(cache.Roots, "base-new", 2*time.Hour, 1<<20)
	file(cache.Images, "blobs/sha256/"+strings.Repeat("a", 64), 60*day, 4<<20)
	file(cache.Images, "downloads/"+strings.Repeat("b", 64), 60*day, 1<<20)
	file(cache.AptArchives, "old_1.0_amd64.deb", 35*day, 1<<20)
	file(cache.AptArchives, "new_1.0_amd64.deb", time.Minute, 1<<20)
}

// TestCacheLsAndPruneEveryKind: ls shows every kind with sizes, ages and in-use state; prune
// removes old entries of every kind but never one in use: a keyed entry whose shared lock a
// conversion holds, nor the image store a conversion holds.
func TestCacheLsAndPruneEveryKind(t *testing.T) {
	root := cache.Root(filepath.Join(t.TempDir(), "cache"))
	now := time.Now()
	fillCache(t, root, now)
	// A conversion uses layer-inuse and the image store.
	d, err := root.Dir(cache.Layers, nil, nil)
	must(t, err)
	hit, inUse, err := d.Acquire(context.Background(), "layer-inuse")
	if err != nil || !hit {
		t.Fatalf("acquire: %v %v", hit, err)
	}
	defer inUse.Release()
	must(t, os.Chtimes(filepath.Join(d.Path, "layer-inuse.lock"), now.Add(-50*24*time.Hour), now.Add(-50*24*time.Hour)))
	store, err := root.UseStore(context.Background(), cache.Images, nil)
	must(t, err)

	var out bytes.Buffer
	must(t, runCacheLs(context.Background(), cacheLsOptions{cacheOptions: cacheOptions{dir: string(root)}}, &out))
	t.Logf("cache ls:\n%s", out.String())
	for _, want := range []string{"KIND", "layers", "layer-old", "3.0 MiB", "40d ago", "roots", "base-old", "images", "sha256/aaaa",
		"apt-archives", "old_1.0_amd64.deb", "layers:          3 entries, 5.0 MiB", "9 entries, 15.0 MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("cache ls does not say %q", want)
		}
	}
	out.Reset()
	must(t, runCacheLs(context.Background(), cacheLsOptions{cacheOptions: cacheOptions{dir: string(root)}, json: true}, &out))
	var l cacheListing
	if err := json.Unmarshal(out.Bytes(), &l); err != nil || len(l.Entries) != 9 || len(l.Kinds) != len(cache.Kinds) {
		t.Fatalf("cache ls --json: %v, %+v", err, l)
	}
	inUseKeys := map[string]bool{}
	for _, e := range l.Entries {
		if e.InUse {
			inUseKeys[e.Key] = true
		}
	}
	if len(inUseKeys) != 3 || !inUseKeys["layer-inuse"] || !inUseKeys["sha256/"+strings.Repeat("a", 64)] {
		t.Errorf("in use: %v, want layer-inuse and the two image store entries", inUseKeys)
	}

	out.Reset()
	must(t, runCachePrune(context.Background(), cachePruneOptions{cacheOptions: cacheOptions{dir: string(root)}, olderThan: "30d"}, &out))
	t.Logf("prune --older-than 30d:\n%s", out.String())
	left := keysLeft(t, root)
	for _, gone := range []string{"layer-old", "base-old", "old_1.0_amd64.deb"} {
		if left[gone] {
			t.Errorf("%s (40 days unused) survived the prune", gone)
		}
	}
	for _, kept := range []string{"layer-inuse", "sha256/" + strings.Repeat("a", 64), "downloads/" + strings.Repeat("b", 64), "layer-new", "base-new", "new_1.0_amd64.deb"} {
		if !left[kept] {
			t.Errorf("%s was removed: in use or recent", kept)
		}
	}
	// The store let go: the next prune may take its old entries; --max-size takes the least
	// recently used until the rest fit, never the entry in use.
	store.Release()
	out.Reset()
	must(t, runCachePrune(context.Background(), cachePruneOptions{cacheOptions: cacheOptions{dir: string(root)}, maxSize: "2.5M"}, &out))
	t.Logf("prune --max-size 2.5M:\n%s", out.String())
	left = keysLeft(t, root)
	if !left["layer-inuse"] || left["sha256/"+strings.Repeat("a", 64)] || left["base-new"] || !left["new_1.0_amd64.deb"] {
		t.Errorf("after --max-size: %v; want layer-inuse (in use) and the most recent entries only", left)
	}
	for _, bad := range []cachePruneOptions{{olderThan: "soon"}, {maxSize: "lots"}, {olderThan: "-1h"}} {
		bad.dir = string(root)
		if err := runCachePrune(context.Background(), bad, &out); err == nil {
			t.Errorf("prune %+v: no error", bad)
		}
	}
}

func keysLeft(t *testing.T, root cache.Root) map[string]bool {
	t.Helper()
	es, err := root.List()
	must(t, err)
	m := map[string]bool{}
	for _, e := range es {
		m[e.Key] = true
	}
	return m
}

// TestCacheDirIsPrivate: the root and its kinds are made 0700, and a root left 0755 by an older
// version is tightened when opened.
func TestCacheDirIsPrivate(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "a", "b")
	root := cache.Root(filepath.Join(parent, "cache"))
	if _, err := root.Dir(cache.Roots, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{parent, string(root), root.Path(cache.Roots)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", p, fi.Mode().Perm(), err)
		}
	}
	must(t, os.Chmod(string(root), 0o755))
	var notes []string
	if _, err := root.Open(cache.Layers, func(f string, a ...any) { notes = append(notes, f) }); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(string(root)); fi.Mode().Perm() != 0o700 || len(notes) != 1 {
		t.Errorf("a 0755 root: now %v, notes %q; want 0700 and a note", fi.Mode().Perm(), notes)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "100": 100, "1K": 1024, "1.5M": 3 << 19, "20G": 20 << 30, "2GiB": 2 << 30, "3MB": 3 << 20} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestCacheCommandHasExamples(t *testing.T) {
	for _, c := range append([]*cobra.Command{newCacheCmd()}, newCacheCmd().Commands()...) {
		if c.Example == "" {
			t.Errorf("%s has no Example", c.Name())
		}
	}
}
