package filecopy

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, p, s string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), perm); err != nil {
		t.Fatal(err)
	}
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestCopy: every way of placing gives dst src's bytes and perm (a link: src's inode);
// Exclusive refuses an existing dst and never writes through a symlink planted there.
func TestCopy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, src, "contents\n", 0o644)
	for _, tc := range []struct {
		name  string
		opts  []Option
		link  bool
		exist bool
	}{
		{name: "copy"}, {name: "copy over", exist: true},
		{name: "reflink", opts: []Option{Reflink}},
		{name: "link", opts: []Option{HardLink}, link: true},
		{name: "link over", opts: []Option{HardLink}, link: true, exist: true},
		{name: "exclusive", opts: []Option{Exclusive, Reflink}},
	} {
		dst := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if tc.exist {
			write(t, dst, "old and longer contents\n", 0o666)
		}
		if err := Copy(ctx, src, dst, 0o600, tc.opts...); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := os.ReadFile(dst)
		fi, _ := os.Stat(dst)
		if string(b) != "contents\n" || (ino(t, dst) == ino(t, src)) != tc.link {
			t.Errorf("%s: %q, same inode %v", tc.name, b, ino(t, dst) == ino(t, src))
		}
		want := os.FileMode(0o600)
		if tc.link {
			want = 0o644
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", tc.name, fi.Mode().Perm(), want)
		}
	}
	victim := filepath.Join(dir, "victim")
	write(t, victim, "keep", 0o644)
	planted := filepath.Join(dir, "planted")
	if err := os.Symlink(victim, planted); err != nil {
		t.Fatal(err)
	}
	if err := Copy(ctx, src, planted, 0o644, Exclusive); !errors.Is(err, fs.ErrExist) {
		t.Errorf("exclusive copy onto a symlink: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("written through the planted link: %q", b)
	}
}

// TestCopyErrors: a missing or non-regular src is refused, and a cancelled copy leaves no dst.
func TestCopyErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Copy(context.Background(), filepath.Join(dir, "absent"), filepath.Join(dir, "a"), 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent src: %v", err)
	}
	if err := Copy(context.Background(), dir, filepath.Join(dir, "b"), 0o644); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory src: %v", err)
	}
	src := filepath.Join(dir, "src")
	write(t, src, "x", 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst := filepath.Join(dir, "c")
	if err := Copy(ctx, src, dst, 0o644); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cancelled copy left %s: %v", dst, err)
	}
}
