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
	"github.com/vm2image/vm2image/pkg/builder"
)

// writeCacheEntry makes a cache entry as builder.Build leaves it: KEY/{layer.tar, meta.json}.
func writeCacheEntry(t *testing.T, dir, key string, created time.Time, size int) {
	t.Helper()
	d := filepath.Join(dir, key)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "layer.tar"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	meta := map[string]any{"version": 1, "key": key, "created": created, "backend": "chroot", "base_digest": "sha256:base",
		"manager": "dpkg", "packages": 83, "layer_diff_id": "sha256:" + key, "layer_size": size}
	b, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(d, "meta.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCacheLsAndPrune(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	writeCacheEntry(t, dir, "aaaaaaaaaaaaaaaa", now.Add(-40*24*time.Hour), 3<<20)
	writeCacheEntry(t, dir, "bbbbbbbbbbbbbbbb", now.Add(-2*time.Hour), 2<<20)
	writeCacheEntry(t, dir, "cccccccccccccccc", now, 1<<20)
	var out bytes.Buffer
	if err := runCacheLs(context.Background(), cacheLsOptions{cacheOptions: cacheOptions{dir: dir}}, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("cache ls:\n%s", out.String())
	for _, want := range []string{"KEY", "aaaaaaaaaaaa", "3.0 MiB", "83", "dpkg", "sha256:base", "3 layers, 6.0 MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("cache ls does not say %q", want)
		}
	}
	out.Reset()
	if err := runCacheLs(context.Background(), cacheLsOptions{cacheOptions: cacheOptions{dir: dir}, json: true}, &out); err != nil {
		t.Fatal(err)
	}
	var entries []builder.Entry
	if err := json.Unmarshal(out.Bytes(), &entries); err != nil || len(entries) != 3 || entries[0].Packages != 83 {
		t.Fatalf("cache ls --json: %v, %+v", err, entries)
	}
	for _, tc := range []struct {
		older, max string
		want       string
	}{
		{"30d", "", "1 layers removed"},
		{"", "1.5M", "1 layers removed"},
		{"", "", "0 layers removed"},
	} {
		out.Reset()
		err := runCachePrune(context.Background(), cachePruneOptions{cacheOptions: cacheOptions{dir: dir}, olderThan: tc.older, maxSize: tc.max}, &out)
		if err != nil || !strings.Contains(out.String(), tc.want) {
			t.Errorf("prune --older-than %q --max-size %q: %v\n%s", tc.older, tc.max, err, out.String())
		}
		t.Logf("cache prune --older-than %q --max-size %q:\n%s", tc.older, tc.max, out.String())
	}
	left, _ := builder.List(dir)
	if len(left) != 1 || left[0].Key != "cccccccccccccccc" {
		t.Errorf("left %+v, want the newest only", left)
	}
	for _, bad := range []cachePruneOptions{{olderThan: "soon"}, {maxSize: "lots"}, {olderThan: "-1h"}} {
		bad.dir = dir
		if err := runCachePrune(context.Background(), bad, &out); err == nil {
			t.Errorf("prune %+v: no error", bad)
		}
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
