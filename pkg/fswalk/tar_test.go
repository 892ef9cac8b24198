//go:build linux

package fswalk

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/fsmeta"
)

// TestWriteTarRoundTrip archives the tricky tree, extracts it with GNU tar, and compares both
// trees entry by entry.
func TestWriteTarRoundTrip(t *testing.T) {
	testenv.RequireCommands(t, "tar")
	src := trickyTree(t)
	archive := filepath.Join(t.TempDir(), "tree.tar")
	f, err := os.Create(archive)
	check(t, err)
	stats, err := WriteTar(context.Background(), f, src, Options{Xattrs: true, OnError: failOnError(t)})
	check(t, err)
	check(t, f.Close())
	if stats.SocketsSkipped != 1 || stats.Hardlinks != 3 || stats.Devices != 2 || stats.FIFOs != 1 ||
		stats.Symlinks != 4 || stats.Errors != 0 || stats.Bytes < 100<<20 {
		t.Errorf("stats: %+v", stats)
	}
	dst := t.TempDir()
	out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", archive, "-C", dst).CombinedOutput()
	if err != nil {
		t.Fatalf("GNU tar -x: %v\n%s", err, out)
	}
	opts := Options{Digest: true, Xattrs: true, OnError: failOnError(t)}
	got := collect(t, dst, opts)
	if len(got["bin/ping"].Xattrs["security.capability"]) == 0 || string(got["etc/owned"].Xattrs["user.note"]) != "hello" ||
		got["sparse"].Size != 100<<20 || got["names/new\nline"].Type != fsmeta.TypeRegular {
		t.Errorf("extracted tree lacks what the comparison relies on: %+v %+v", got["bin/ping"], got["etc/owned"])
	}
	compareTrees(t, collect(t, src, opts), got)

	out, err = exec.Command("tar", "-tvf", archive).CombinedOutput()
	check(t, err)
	if !bytes.Contains(out, []byte("links/b link to links/a")) || !bytes.Contains(out, []byte("links/t3 link to links/t1")) {
		t.Errorf("tar -tv does not list the hard links as links:\n%.2000s", out)
	}
	checkHeaders(t, archive)
}

// compareTrees compares two walks of trees that should hold the same entries (but the root's
// and the sockets, which tar cannot hold).
func compareTrees(t *testing.T, a, b map[string]fsmeta.Entry) {
	t.Helper()
	for _, m := range []map[string]fsmeta.Entry{a, b} {
		delete(m, ".")
		maps.DeleteFunc(m, func(_ string, e fsmeta.Entry) bool { return e.Type == fsmeta.TypeSocket })
	}
	for _, p := range slices.Sorted(maps.Keys(a)) {
		x, ok := b[p]
		if !ok {
			t.Errorf("%q: missing after extraction", p)
			continue
		}
		compareEntries(t, a[p], x)
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			t.Errorf("%q: extra after extraction", p)
		}
	}
	if ga, gb := linkGroups(a), linkGroups(b); !slices.EqualFunc(ga, gb, slices.Equal) {
		t.Errorf("hard-link groups differ:\n%q\n%q", ga, gb)
	}
}

func compareEntries(t *testing.T, a, b fsmeta.Entry) {
	t.Helper()
	if a.Type != b.Type || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Size != b.Size ||
		a.Digest != b.Digest || a.Target != b.Target || a.DevMajor != b.DevMajor || a.DevMinor != b.DevMinor {
		t.Errorf("%q:\n src %+v\n dst %+v", a.Path, a, b)
	}
	if !maps.EqualFunc(a.Xattrs, b.Xattrs, bytes.Equal) {
		t.Errorf("%q: xattrs %q vs %q", a.Path, a.Xattrs, b.Xattrs)
	}
	if a.Type != fsmeta.TypeSymlink && a.MTime != b.MTime { // GNU tar does not set symlink times
		t.Errorf("%q: mtime %d vs %d", a.Path, a.MTime, b.MTime)
	}
}

// linkGroups lists the sorted paths of each inode that has several names in the tree.
func linkGroups(m map[string]fsmeta.Entry) [][]string {
	byIno := map[[2]uint64][]string{}
	for p, e := range m {
		if e.IsHardlinked() {
			k := [2]uint64{e.Dev, e.Ino}
			byIno[k] = append(byIno[k], p)
		}
	}
	var groups [][]string
	for _, g := range byIno {
		slices.Sort(g)
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(x, y []string) int { return strings.Compare(x[0], y[0]) })
	return groups
}

// checkHeaders reads the archive with archive/tar and checks what GNU tar does not show.
func checkHeaders(t *testing.T, archive string) {
	t.Helper()
	f, err := os.Open(archive)
	check(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	seen := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		check(t, err)
		if h.Uname != "" || h.Gname != "" || strings.HasPrefix(h.Name, "./") || h.Name == "." {
			t.Errorf("header %q: uname %q gname %q", h.Name, h.Uname, h.Gname)
		}
		if (h.Typeflag == tar.TypeDir) != strings.HasSuffix(h.Name, "/") {
			t.Errorf("header %q: type %c", h.Name, h.Typeflag)
		}
		seen[h.Name] = h
	}
	if h := seen["bin/ping"]; h == nil || h.PAXRecords["SCHILY.xattr.security.capability"] == "" {
		t.Errorf("bin/ping has no security.capability record: %+v", h)
	}
	if h := seen["etc/owned"]; h == nil || h.Uid != 1234 || h.Gid != 5678 || h.ModTime.Nanosecond() != 123456789 {
		t.Errorf("etc/owned: %+v", h)
	}
	if h := seen["links/t2"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "links/t1" || h.Size != 0 {
		t.Errorf("links/t2: %+v", h)
	}
	if h := seen["dev/sda"]; h == nil || h.Typeflag != tar.TypeBlock || h.Devmajor != 8 {
		t.Errorf("dev/sda: %+v", h)
	}
}

// TestWriteTarDeterministic writes the same tree twice and expects the same bytes.
func TestWriteTarDeterministic(t *testing.T) {
	var dir string
	if os.Geteuid() == 0 {
		dir = trickyTree(t)
	} else {
		dir = t.TempDir()
		BuildTree(t, dir, TestDir{"a": TestFile{Content: "x"}, "b": TestHardlink{Target: "a"}, "d": TestDir{"l": TestSymlink{Target: "../a"}}})
	}
	var sums [2][32]byte
	for i := range sums {
		h := sha256.New()
		_, err := WriteTar(context.Background(), h, dir, Options{Xattrs: true, OnError: failOnError(t)})
		check(t, err)
		copy(sums[i][:], h.Sum(nil))
	}
	if sums[0] != sums[1] {
		t.Errorf("two archives of the same tree differ: %x vs %x", sums[0], sums[1])
	}
}

// readTar returns the contents of each entry of a tar, failing on a malformed one.
func readTar(t *testing.T, b []byte) (names []string, contents map[string]string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	contents = map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, contents
		}
		if err != nil {
			t.Fatalf("reading the tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		check(t, err)
		names = append(names, h.Name)
		contents[h.Name] = string(data)
	}
}

// TestWriteTarChangingFiles grows one file and shrinks another between their headers and their
// contents: the stream stays readable, sizes hold, both changes are reported.
func TestWriteTarChangingFiles(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{"grow": TestFile{Content: "12345"}, "shrink": TestFile{Content: "abcdef"}, "z": TestFile{Content: "after"}})
	hooks := &testHooks{beforeCopy: func(p string) {
		switch p {
		case "grow":
			f, err := os.OpenFile(filepath.Join(dir, p), os.O_APPEND|os.O_WRONLY, 0)
			check(t, err)
			_, err = f.WriteString(strings.Repeat("more", 1000))
			check(t, err)
			check(t, f.Close())
		case "shrink":
			check(t, os.Truncate(filepath.Join(dir, p), 2))
		}
	}}
	var log errorLog
	var buf bytes.Buffer
	stats, err := WriteTar(context.Background(), &buf, dir, Options{OnError: log.onError, hooks: hooks})
	check(t, err)
	_, contents := readTar(t, buf.Bytes())
	if contents["grow"] != "12345" || contents["shrink"] != "ab\x00\x00\x00\x00" || contents["z"] != "after" {
		t.Errorf("contents: %q", contents)
	}
	if !slices.Equal(log.paths, []string{"grow", "shrink"}) || !errors.Is(log.errs[0], ErrChanged) || !errors.Is(log.errs[1], ErrChanged) {
		t.Errorf("errors: %q", log.msgs)
	}
	if stats.Errors != 2 || stats.Files != 3 {
		t.Errorf("stats: %+v", stats)
	}
}

// TestWriteTarGrowingConcurrently appends to a file from a goroutine while it is archived.
func TestWriteTarGrowingConcurrently(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{"log": TestSparse{Size: 8 << 20, Tail: "x"}})
	f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_APPEND|os.O_WRONLY, 0)
	check(t, err)
	defer f.Close()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				f.WriteString(strings.Repeat("line\n", 100))
			}
		}
	}()
	var buf bytes.Buffer
	var log errorLog
	_, err = WriteTar(context.Background(), &buf, dir, Options{OnError: log.onError})
	close(stop)
	<-done
	check(t, err)
	names, _ := readTar(t, buf.Bytes())
	if !slices.Equal(names, []string{"log"}) {
		t.Errorf("entries: %q", names)
	}
	for _, e := range log.errs {
		if !errors.Is(e, ErrChanged) {
			t.Errorf("unexpected error: %v", e)
		}
	}
	t.Logf("%d changes reported", len(log.errs))
}

// TestWriteTarVanished removes a file after it was listed, before it is opened.
func TestWriteTarVanished(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{"a": TestFile{Content: "a"}, "gone": TestFile{Content: "g"}, "z": TestFile{Content: "z"}})
	hooks := &testHooks{beforeOpen: func(p string) {
		if p == "gone" {
			check(t, os.Remove(filepath.Join(dir, p)))
		}
	}}
	var log errorLog
	var buf bytes.Buffer
	stats, err := WriteTar(context.Background(), &buf, dir, Options{OnError: log.onError, hooks: hooks})
	check(t, err)
	names, _ := readTar(t, buf.Bytes())
	if !slices.Equal(names, []string{"a", "z"}) || stats.Errors != 1 || !errors.Is(log.errs[0], os.ErrNotExist) {
		t.Errorf("entries %q, errors %q, stats %+v", names, log.msgs, stats)
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteTarWriteError(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{"big": TestSparse{Size: 4 << 20, Tail: "x"}})
	_, err := WriteTar(context.Background(), &failingWriter{n: 1 << 20}, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("got %v", err)
	}
}
