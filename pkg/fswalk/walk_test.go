//go:build linux

package fswalk

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"golang.org/x/sys/unix"
)

// walkPaths returns the paths Walk visits, in order.
func walkPaths(t *testing.T, root string, opts Options) []string {
	t.Helper()
	var got []string
	err := Walk(context.Background(), root, opts, func(e *fsmeta.Entry) error {
		got = append(got, e.Path)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

// collect returns every entry Walk visits, by path.
func collect(t *testing.T, root string, opts Options) map[string]fsmeta.Entry {
	t.Helper()
	m := map[string]fsmeta.Entry{}
	err := Walk(context.Background(), root, opts, func(e *fsmeta.Entry) error {
		m[e.Path] = *e
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return m
}

// failOnError is an OnError that fails the test.
func failOnError(t *testing.T) func(string, error) error {
	return func(p string, err error) error {
		t.Errorf("unexpected error at %q: %v", p, err)
		return nil
	}
}

// errorLog is an OnError that records what it is given.
type errorLog struct {
	paths, msgs []string
	errs        []error
}

func (l *errorLog) onError(p string, err error) error {
	l.paths, l.msgs, l.errs = append(l.paths, p), append(l.msgs, err.Error()), append(l.errs, err)
	return nil
}

func TestWalkOrder(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{
		"b": TestFile{}, "B": TestFile{}, "a.b": TestFile{},
		"a": TestDir{"c": TestFile{}, "\xff": TestFile{}, "A": TestDir{}},
		"z": TestSymlink{Target: "a"},
	})
	got := walkPaths(t, dir, Options{OnError: failOnError(t)})
	want := []string{".", "B", "a", "a/A", "a/c", "a/\xff", "a.b", "b", "z"}
	if !slices.Equal(got, want) {
		t.Errorf("order:\n got %q\nwant %q", got, want)
	}
}

func TestWalkEntries(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{
		"f":    TestFile{Content: "hello", Mode: 0640},
		"l":    TestSymlink{Target: "f"},
		"h":    TestHardlink{Target: "f"},
		"d":    TestDirMode{Mode: 0710},
		"pipe": TestFIFO{},
	})
	m := collect(t, dir, Options{Digest: true, OnError: failOnError(t)})
	f, l, h, d, p := m["f"], m["l"], m["h"], m["d"], m["pipe"]
	sum := sha256.Sum256([]byte("hello"))
	if f.Type != fsmeta.TypeRegular || f.Size != 5 || f.Mode != 0640 || f.Digest != fmt.Sprintf("sha256:%x", sum) {
		t.Errorf("file: %+v", f)
	}
	if f.Nlink != 2 || h.Ino != f.Ino || h.Dev != f.Dev || !h.IsHardlinked() {
		t.Errorf("hard link: %+v vs %+v", h, f)
	}
	if l.Type != fsmeta.TypeSymlink || l.Target != "f" || l.Size != 1 || l.Digest != "" {
		t.Errorf("symlink: %+v", l)
	}
	if d.Type != fsmeta.TypeDir || d.Mode != 0710 || d.Size != 0 {
		t.Errorf("dir: %+v", d)
	}
	if p.Type != fsmeta.TypeFIFO || f.MTime != testMTime.UnixNano() {
		t.Errorf("fifo %+v, mtime %d", p, f.MTime)
	}
	if m["."].Type != fsmeta.TypeDir {
		t.Errorf("root: %+v", m["."])
	}
}

func TestWalkXattrs(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{
		"f": TestFile{Xattrs: map[string]string{"user.a": "1", "user.empty": "", "user.big": strings.Repeat("v", 3000)}},
		"d": TestDirMode{Mode: 0755, Xattrs: map[string]string{"user.d": "dir"}},
		"l": TestSymlink{Target: "f"},
	})
	m := collect(t, dir, Options{Xattrs: true, OnError: failOnError(t)})
	x := m["f"].Xattrs
	if len(x) != 3 || string(x["user.a"]) != "1" || len(x["user.empty"]) != 0 || len(x["user.big"]) != 3000 {
		t.Errorf("file xattrs: %q", x)
	}
	if string(m["d"].Xattrs["user.d"]) != "dir" || m["l"].Xattrs != nil {
		t.Errorf("dir xattrs %q, symlink xattrs %q", m["d"].Xattrs, m["l"].Xattrs)
	}
	if m := collect(t, dir, Options{}); m["f"].Xattrs != nil {
		t.Errorf("xattrs read without Options.Xattrs")
	}
}

func TestWalkExcludes(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{
		"a":    TestDir{"proc": TestDir{"x": TestFile{}}, "b": TestDir{"proc": TestFile{}}},
		"proc": TestDir{"y": TestFile{}},
		"var":  TestDir{"log": TestDir{"x.gz": TestFile{}, "y.log": TestFile{}, "old": TestDir{"z.gz": TestFile{}}}},
		"home": TestDir{"u": TestDir{".cache": TestDir{"c": TestFile{}}, ".profile": TestFile{}}},
		"tmp":  TestDir{"t": TestFile{}},
	})
	got := walkPaths(t, dir, Options{
		Excludes: []string{"/a/proc", "/var/log/*.gz", "home/*/.cache", "/tmp/*"},
		OnError:  failOnError(t),
	})
	want := []string{".", "a", "a/b", "a/b/proc", "home", "home/u", "home/u/.profile",
		"proc", "proc/y", "tmp", "var", "var/log", "var/log/old", "var/log/old/z.gz", "var/log/y.log"}
	if !slices.Equal(got, want) {
		t.Errorf("walk with excludes:\n got %q\nwant %q", got, want)
	}
	err := Walk(context.Background(), dir, Options{Excludes: []string{"/a/[b"}}, func(*fsmeta.Entry) error { return nil })
	if !errors.Is(err, path.ErrBadPattern) {
		t.Errorf("bad pattern: got %v", err)
	}
}

func TestWalkTreatAsMounts(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{
		"proc": TestDir{"x": TestFile{}}, "sys": TestDir{"y": TestFile{}},
		"run": TestDir{"z": TestFile{}}, "dev": TestDir{"null": TestFile{}},
		"a": TestDir{"proc": TestDir{"x": TestFile{}}},
	})
	got := walkPaths(t, dir, Options{TreatAsMounts: true, OnError: failOnError(t)})
	want := []string{".", "a", "a/proc", "a/proc/x", "dev", "proc", "run", "sys"}
	if !slices.Equal(got, want) {
		t.Errorf("TreatAsMounts:\n got %q\nwant %q", got, want)
	}
	if got := walkPaths(t, dir, Options{}); !slices.Contains(got, "proc/x") {
		t.Errorf("proc/x skipped without TreatAsMounts: %q", got)
	}
}

// TestWalkMountinfo feeds a made-up mountinfo: a plain directory shown as a proc mount is skipped,
// one shown as ext4 is walked, and a mount elsewhere is ignored.
func TestWalkMountinfo(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{
		"fake proc": TestDir{"x": TestFile{}}, "data": TestDir{"y": TestFile{}},
		"fuse": TestDir{"z": TestFile{}}, "other": TestDir{"w": TestFile{}},
	})
	root, err := filepath.EvalSymlinks(dir)
	check(t, err)
	esc := strings.ReplaceAll(root, " ", `\040`)
	mi := filepath.Join(t.TempDir(), "mountinfo")
	check(t, os.WriteFile(mi, []byte(fmt.Sprintf(
		"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"+
			"2 1 0:5 / %s/fake\\040proc rw - proc proc rw\n"+
			"3 1 8:2 / %s/data rw shared:1 - ext4 /dev/sda2 rw\n"+
			"4 1 0:6 / %s/fuse rw - fuse.sshfs host:/ rw\n"+
			"5 1 0:7 / %s-other/other rw - proc proc rw\n", esc, esc, esc, esc)), 0644))
	got := walkPaths(t, dir, Options{MountinfoPath: mi, OnError: failOnError(t)})
	want := []string{".", "data", "data/y", "fake proc", "fuse", "other", "other/w"}
	if !slices.Equal(got, want) {
		t.Errorf("mountinfo:\n got %q\nwant %q", got, want)
	}
	got = walkPaths(t, dir, Options{MountinfoPath: mi, Pseudo: PseudoWalk})
	if !slices.Contains(got, "fake proc/x") || !slices.Contains(got, "fuse/z") {
		t.Errorf("PseudoWalk skipped contents: %q", got)
	}
}

// TestWalkTmpfs mounts a real tmpfs inside the tree: the mount point is listed, not its contents.
func TestWalkTmpfs(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{"mnt": TestDir{}, "a": TestDir{"proc": TestDir{"x": TestFile{}}}})
	mnt := filepath.Join(dir, "mnt")
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		testenv.Skip(t, "cannot mount a tmpfs here: "+err.Error())
	}
	t.Cleanup(func() { check(t, unix.Unmount(mnt, unix.MNT_DETACH)) })
	check(t, os.WriteFile(filepath.Join(mnt, "file"), []byte("in tmpfs"), 0644))
	for _, mi := range []string{"", "/nonexistent"} { // from mountinfo, then from statfs magic
		got := walkPaths(t, dir, Options{MountinfoPath: mi, OnError: failOnError(t)})
		want := []string{".", "a", "a/proc", "a/proc/x", "mnt"}
		if !slices.Equal(got, want) {
			t.Errorf("mountinfo %q:\n got %q\nwant %q", mi, got, want)
		}
	}
	if got := walkPaths(t, dir, Options{Pseudo: PseudoWalk}); !slices.Contains(got, "mnt/file") {
		t.Errorf("PseudoWalk: %q", got)
	}
	got := walkPaths(t, dir, Options{TreatAsMounts: true})
	if !slices.Contains(got, "a/proc/x") {
		t.Errorf("TreatAsMounts dropped a/proc/x: %q", got)
	}
}

// TestWalkSymlinkSwap replaces a directory with a symlink to outside the root between its
// listing and its opening: the walk must report it and not follow it.
func TestWalkSymlinkSwap(t *testing.T) {
	outer := t.TempDir()
	BuildTree(t, outer, TestDir{"secret": TestDir{"key": TestFile{Content: "s3cret"}}, "root": TestDir{"d": TestDir{"f": TestFile{}}}})
	root := filepath.Join(outer, "root")
	var log errorLog
	hooks := &testHooks{beforeOpenDir: func(p string) {
		if p == "d" {
			check(t, os.RemoveAll(filepath.Join(root, "d")))
			check(t, os.Symlink("../secret", filepath.Join(root, "d")))
		}
	}}
	got := walkPaths(t, root, Options{OnError: log.onError, hooks: hooks})
	if !slices.Equal(got, []string{".", "d"}) {
		t.Errorf("walk followed the swapped symlink: %q", got)
	}
	if len(log.paths) != 1 || log.paths[0] != "d" {
		t.Errorf("errors: %q", log.msgs)
	}
}

// TestWalkVanished removes a file after its directory was read: reported, skipped, walk goes on.
func TestWalkVanished(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{"a": TestFile{}, "gone": TestFile{}, "z": TestFile{}})
	var log errorLog
	hooks := &testHooks{beforeStat: func(p string) {
		if p == "gone" {
			check(t, os.Remove(filepath.Join(dir, p)))
		}
	}}
	got := walkPaths(t, dir, Options{OnError: log.onError, hooks: hooks})
	if !slices.Equal(got, []string{".", "a", "z"}) {
		t.Errorf("got %q", got)
	}
	if len(log.errs) != 1 || log.paths[0] != "gone" || !errors.Is(log.errs[0], fs.ErrNotExist) {
		t.Errorf("errors: %q", log.msgs)
	}
	abort := errors.New("abort")
	hooks.beforeStat = func(p string) {
		if p == "z" {
			check(t, os.Remove(filepath.Join(dir, p)))
		}
	}
	err := Walk(context.Background(), dir, Options{hooks: hooks, OnError: func(string, error) error { return abort }},
		func(*fsmeta.Entry) error { return nil })
	if !errors.Is(err, abort) {
		t.Errorf("OnError's error not returned: %v", err)
	}
}

func TestWalkFnErrorAndContext(t *testing.T) {
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{"a": TestFile{}, "b": TestDir{"c": TestFile{}}})
	stop := errors.New("stop")
	n := 0
	err := Walk(context.Background(), dir, Options{}, func(e *fsmeta.Entry) error {
		if n++; e.Path == "b" {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Errorf("fn error: got %v after %d entries", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = Walk(ctx, dir, Options{}, func(e *fsmeta.Entry) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled walk: %v", err)
	}
}

// TestWalkDeep walks a path longer than PATH_MAX would allow from the filesystem root.
func TestWalkDeep(t *testing.T) {
	dir := t.TempDir()
	buildDeep(t, dir, 15)
	m := collect(t, dir, Options{Digest: true, Xattrs: true, OnError: failOnError(t)})
	var deepest string
	for p := range m {
		if len(p) > len(deepest) {
			deepest = p
		}
	}
	if len(filepath.Join(dir, deepest)) <= 3800 || m[deepest].Digest == "" {
		t.Errorf("deepest path %d bytes: %+v", len(deepest), m[deepest])
	}
}

// TestWalkMountPointMetadata: the entry of a skipped mount point carries an image's directory
// metadata (root, 0755; 01777 for a sticky tmpfs), never the mounted root's owner and mode.
func TestWalkMountPointMetadata(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	BuildTree(t, dir, TestDir{"private": TestDir{}, "tmp": TestDir{}})
	for name, opts := range map[string]string{"private": "size=1m,mode=0700,uid=1234,gid=1234", "tmp": "size=1m,mode=1777"} {
		mnt := filepath.Join(dir, name)
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, opts); err != nil {
			testenv.Skip(t, "cannot mount a tmpfs here: "+err.Error())
		}
		t.Cleanup(func() { check(t, unix.Unmount(mnt, unix.MNT_DETACH)) })
	}
	got := map[string]fsmeta.Entry{}
	err := Walk(t.Context(), dir, Options{OnError: failOnError(t)}, func(e *fsmeta.Entry) error {
		got[e.Path] = *e
		return nil
	})
	check(t, err)
	if e := got["private"]; e.Mode != 0o755 || e.UID != 0 || e.GID != 0 {
		t.Errorf("private: mode %o uid %d gid %d, want 755 0 0", e.Mode, e.UID, e.GID)
	}
	if e := got["tmp"]; e.Mode != 0o1777 || e.UID != 0 {
		t.Errorf("tmp: mode %o uid %d, want 1777 0", e.Mode, e.UID)
	}
	// Served as a root of its own (TreatAsMounts), a directory keeps what it is.
	check(t, Walk(t.Context(), dir, Options{Pseudo: PseudoWalk}, func(e *fsmeta.Entry) error {
		if e.Path == "private" && e.Mode != 0o700 {
			t.Errorf("PseudoWalk: private mode %o, want 700", e.Mode)
		}
		return nil
	}))
}
