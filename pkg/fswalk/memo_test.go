//go:build linux

package fswalk

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func ctimeOf(t *testing.T, p string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ctim.Nano()
}

// waitCtimeTick returns once a file written now gets another ctime than p has: the kernel's
// coarse clock for time stamps has moved on.
func waitCtimeTick(t *testing.T, dir, p string) {
	t.Helper()
	probe := filepath.Join(dir, ".probe")
	for {
		if err := os.WriteFile(probe, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if ctimeOf(t, probe) != ctimeOf(t, p) {
			return
		}
	}
}

// TestHashMemoCatchesSameSizeSameMtime: a file whose contents change while its size and mtime
// stay as they were is hashed again, not answered from the memo: its ctime moved.
func TestHashMemoCatchesSameSizeSameMtime(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	write("aaaa")
	memo := NewDigestMemo(10)
	memo.racy = 0 // this test waits for the clock itself
	ctx := context.Background()
	first := HashMemo(ctx, dir, []string{"f"}, memo)[0]
	if first.Err != "" || memo.Len() != 1 {
		t.Fatalf("first hash: %+v, memo holds %d", first, memo.Len())
	}
	// The memo answers for the unchanged file: poison its entry and see it come back.
	for k := range memo.m {
		memo.m[k] = "sha256:from-the-memo"
	}
	if got := HashMemo(ctx, dir, []string{"f"}, memo)[0].Digest; got != "sha256:from-the-memo" {
		t.Fatalf("unchanged file: %q, want the memo's answer", got)
	}
	waitCtimeTick(t, dir, p)
	write("bbbb") // same size, same mtime
	got := HashMemo(ctx, dir, []string{"f"}, memo)[0]
	want := Hash(ctx, dir, []string{"f"})[0]
	if got.Digest != want.Digest || got.Digest == first.Digest {
		t.Errorf("after a same-size same-mtime rewrite: %q, want %q (not the memo's)", got.Digest, want.Digest)
	}
}

// TestHashMemoRacy: a file changed just now is not remembered (a second write in the same
// clock tick would leave its time stamps as they are).
func TestHashMemoRacy(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("fresh"), 0o644); err != nil {
		t.Fatal(err)
	}
	memo := NewDigestMemo(10)
	if r := HashMemo(context.Background(), dir, []string{"f"}, memo)[0]; r.Err != "" {
		t.Fatal(r.Err)
	}
	if memo.Len() != 0 {
		t.Errorf("a file changed just now was remembered")
	}
}
