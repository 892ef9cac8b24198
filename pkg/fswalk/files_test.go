//go:build linux

package fswalk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{
		"etc":   TestDir{"passwd": TestFile{Content: "root"}, "skel": TestDir{"x": TestFile{Content: "x"}}},
		"bin":   TestDir{"sh": TestFile{Content: "sh"}, "ls": TestFile{Content: "ls"}},
		"links": TestDir{"a": TestFile{Content: "link"}, "b": TestHardlink{Target: "links/a"}},
		"usr":   TestDir{"lib": TestDir{"libc": TestFile{Content: "libc"}}},
		"lib":   TestSymlink{Target: "usr/lib"},
		"abs":   TestSymlink{Target: "/etc"},
		"tmp":   TestDir{"t": TestFile{Content: "t"}},
	})
	for _, tc := range []struct {
		paths     []string
		recursive bool
		want      []string
	}{
		{[]string{"etc/passwd", "/bin", "links/b", "links/a"}, false, []string{"etc/passwd", "bin/", "links/b", "links/a"}},
		{[]string{"/bin", "etc/skel/"}, true, []string{"bin/", "bin/ls", "bin/sh", "etc/skel/", "etc/skel/x"}},
		{[]string{"lib/libc", "lib", "abs"}, false, []string{"lib/libc", "lib", "abs"}}, // inner symlink followed; named symlinks not
		{[]string{"tmp/t", "tmp"}, false, []string{"tmp/"}},                             // excluded
		{[]string{"/", "."}, false, nil},
		{[]string{"missing", "bin/sh"}, false, []string{"bin/sh"}},
	} {
		var buf bytes.Buffer
		var log errorLog
		_, err := WriteFiles(context.Background(), &buf, dir, tc.paths, Options{Excludes: []string{"/tmp/*"}, OnError: log.onError}, tc.recursive)
		if err != nil {
			t.Errorf("%q: %v", tc.paths, err)
			continue
		}
		names, contents := readTar(t, buf.Bytes())
		if !slices.Equal(names, tc.want) {
			t.Errorf("%q recursive=%v:\n got %q\nwant %q", tc.paths, tc.recursive, names, tc.want)
		}
		if c, ok := contents["links/b"]; ok && c != "link" {
			t.Errorf("first name of a hard link has no contents")
		}
		if slices.Contains(tc.paths, "missing") != (len(log.paths) == 1) {
			t.Errorf("%q: errors %q", tc.paths, log.msgs)
		}
	}
	var buf bytes.Buffer
	if _, err := WriteFiles(context.Background(), &buf, dir, []string{"."}, Options{}, true); err != nil {
		t.Fatal(err)
	}
	var whole bytes.Buffer
	if _, err := WriteTar(context.Background(), &whole, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), whole.Bytes()) {
		t.Errorf("WriteFiles(\".\", recursive) differs from WriteTar")
	}
}

// TestOutsideRoot asks for paths outside the root, lexically and through symlinks, and checks
// that they are refused and that nothing outside is read.
func TestOutsideRoot(t *testing.T) {
	outer := t.TempDir()
	BuildTree(t, outer, TestDir{
		"secret": TestFile{Content: "s3cret"},
		"root": TestDir{
			"etc":    TestDir{"passwd": TestFile{Content: "inside"}},
			"abs":    TestSymlink{Target: "/etc"},
			"up":     TestSymlink{Target: "../../"},
			"parent": TestSymlink{Target: ".."},
			"d":      TestDir{"loop": TestSymlink{Target: "../parent"}},
		},
	})
	root := filepath.Join(outer, "root")
	for _, p := range []string{"../etc/passwd", "/../../etc/shadow", "etc/../../secret", "abs/passwd", "abs/shadow",
		"up/etc/passwd", "parent/secret", "d/loop/secret"} {
		var buf bytes.Buffer
		_, err := WriteFiles(context.Background(), &buf, root, []string{"etc/passwd", p}, Options{}, true)
		if !errors.Is(err, ErrOutsideRoot) || !strings.Contains(err.Error(), fmt.Sprintf("%q", p)) {
			t.Errorf("WriteFiles(%q): got %v, want ErrOutsideRoot naming it", p, err)
		}
		if bytes.Contains(buf.Bytes(), []byte("s3cret")) || bytes.Contains(buf.Bytes(), []byte("root:")) {
			t.Errorf("WriteFiles(%q) read outside the root", p)
		}
		res := Hash(context.Background(), root, []string{p})
		if res[0].Digest != "" || !strings.Contains(res[0].Err, ErrOutsideRoot.Error()) || res[0].Path != p {
			t.Errorf("Hash(%q): %+v", p, res[0])
		}
	}
	// The symlinks themselves are entries of the tree.
	var buf bytes.Buffer
	if _, err := WriteFiles(context.Background(), &buf, root, []string{"abs", "up", "parent"}, Options{}, true); err != nil {
		t.Errorf("writing symlinks: %v", err)
	}
}

func TestHash(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{
		"etc":   TestDir{"passwd": TestFile{Content: "root"}},
		"empty": TestFile{},
		"usr":   TestDir{"lib": TestDir{"libc": TestFile{Content: "libc"}}},
		"lib":   TestSymlink{Target: "usr/lib"},
		"pipe":  TestFIFO{},
	})
	sum := func(s string) string { return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s))) }
	res := Hash(context.Background(), dir, []string{"etc/passwd", "/empty", "lib/libc", "lib", "etc", "missing", "pipe", "../x"})
	want := []HashResult{
		{Path: "etc/passwd", Digest: sum("root"), Size: 4},
		{Path: "/empty", Digest: sum(""), Size: 0},
		{Path: "lib/libc", Digest: sum("libc"), Size: 4},
	}
	if !slices.Equal(res[:3], want) {
		t.Errorf("got %+v\nwant %+v", res[:3], want)
	}
	for _, r := range res[3:] {
		if r.Err == "" || r.Digest != "" {
			t.Errorf("%q: want an error, got %+v", r.Path, r)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := Hash(ctx, dir, []string{"etc/passwd"}); !strings.Contains(res[0].Err, "canceled") {
		t.Errorf("canceled: %+v", res[0])
	}
}
