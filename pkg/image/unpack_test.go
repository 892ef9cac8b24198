package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/vm2image/vm2image/pkg/archive"
	"golang.org/x/sys/unix"
)

// imageOf stacks the tars as layers of an image.
func imageOf(t *testing.T, tars ...[]byte) v1.Image {
	t.Helper()
	st := blobStore{dir: t.TempDir()}
	img := empty.Image
	for _, raw := range tars {
		l, err := st.compress(context.Background(), bytes.NewReader(raw), Gzip, 0)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			m[rel] = "-> " + target
		case fi.IsDir():
			m[rel] = "dir"
		default:
			b, _ := os.ReadFile(p)
			m[rel] = string(b)
		}
		return nil
	})
	return m
}

// TestUnpackRefusesNamesBelowLowerSymlinks: a layer naming bin/tool over a lower bin -> usr/bin
// (or var/run/pid over var/run -> /run) is unpacked by an engine into a directory of its own,
// where bin is a plain directory hiding the symlink; a chroot-like unpack would follow it. Such
// a layer is refused, not read otherwise than a container sees it.
func TestUnpackRefusesNamesBelowLowerSymlinks(t *testing.T) {
	lower := buildTar(t, []tarEntry{{name: "usr/bin/", typ: tar.TypeDir}, {name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
		{name: "var/", typ: tar.TypeDir}, {name: "var/run", typ: tar.TypeSymlink, link: "/run"}})
	for _, name := range []string{"bin/tool", "var/run/pid"} {
		upper := buildTar(t, []tarEntry{{name: name, body: "x\n"}})
		err := Unpack(context.Background(), imageOf(t, lower, upper), t.TempDir())
		if !errors.Is(err, archive.ErrEngineDiffers) {
			t.Errorf("%s: Unpack error = %v; want archive.ErrEngineDiffers", name, err)
		}
	}
}

func TestUnpackWhiteoutsAndOpaqueDirs(t *testing.T) {
	lower := buildTar(t, []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/issue.net", body: "Debian\n"},
		{name: "etc/keep", body: "keep\n"},
		{name: "var/lib/app/", typ: tar.TypeDir},
		{name: "var/lib/app/old1", body: "old1\n"},
		{name: "var/lib/app/sub/", typ: tar.TypeDir},
		{name: "var/lib/app/sub/old2", body: "old2\n"},
		{name: "usr/bin/", typ: tar.TypeDir},
		{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
		{name: "var/run", typ: tar.TypeSymlink, link: "/run"},
		{name: "gone/", typ: tar.TypeDir},
		{name: "gone/file", body: "x\n"},
		{name: "replaced", body: "file\n"},
	})
	upper := buildTar(t, []tarEntry{
		{name: "var/lib/app/sub/new", body: "new\n"}, // written before the opaque marker
		{name: "var/lib/app/.wh..wh..opq"},
		{name: "var/lib/app/new2", body: "new2\n"},
		{name: "etc/.wh.issue.net"},
		{name: ".wh.gone"},
		{name: "etc/.wh.not-there"},
		{name: "usr/bin/tool", body: "tool\n"},
		{name: "replaced/", typ: tar.TypeDir},
		{name: "etc/keep", body: "keep\n"}, // a hard link names a file of its own layer
		{name: "etc/keep-link", typ: tar.TypeLink, link: "etc/keep"},
		{name: "./etc/dot", body: "dot\n"},
	})
	dir := t.TempDir()
	if err := Unpack(context.Background(), imageOf(t, lower, upper), dir); err != nil {
		t.Fatal(err)
	}
	got := readTree(t, dir)
	want := map[string]string{
		"etc": "dir", "etc/keep": "keep\n", "etc/keep-link": "keep\n", "etc/dot": "dot\n",
		"var": "dir", "var/lib": "dir", "var/lib/app": "dir", "var/lib/app/sub": "dir",
		"var/lib/app/sub/new": "new\n", "var/lib/app/new2": "new2\n",
		"usr": "dir", "usr/bin": "dir", "usr/bin/tool": "tool\n", "bin": "-> usr/bin",
		"var/run": "-> /run", "replaced": "dir",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s = %q, want %q", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s = %q", p, got[p])
		}
	}
	a, _ := os.Stat(filepath.Join(dir, "etc/keep"))
	b, _ := os.Stat(filepath.Join(dir, "etc/keep-link"))
	if !os.SameFile(a, b) {
		t.Error("etc/keep-link is not a hardlink of etc/keep")
	}
}

func TestUnpackRejectsHostileLayers(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		entry   string // the entry the error must name
	}{
		{"dotdot", []tarEntry{{name: "../escaped", body: "x"}}, "../escaped"},
		{"dotdot inside", []tarEntry{{name: "a/../../escaped", body: "x"}}, "a/../../escaped"},
		{"absolute", []tarEntry{{name: "/tmp/escaped", body: "x"}}, "/tmp/escaped"},
		{"symlink escape", []tarEntry{
			{name: "evil", typ: tar.TypeSymlink, link: "../../../../../../outside"},
			{name: "evil/escaped", body: "x"},
		}, "evil/escaped"},
		{"symlink chain escape", []tarEntry{
			{name: "a/", typ: tar.TypeDir},
			{name: "a/up", typ: tar.TypeSymlink, link: ".."},
			{name: "a/up2", typ: tar.TypeSymlink, link: "up/.."},
			{name: "a/up2/escaped", body: "x"},
		}, "a/up2/escaped"},
		{"hardlink escape", []tarEntry{{name: "passwd", typ: tar.TypeLink, link: "../outside/sentinel"}}, "passwd"},
		{"hardlink through symlink", []tarEntry{
			{name: "out", typ: tar.TypeSymlink, link: "../outside"},
			{name: "stolen", typ: tar.TypeLink, link: "out/sentinel"},
		}, "stolen"},
		{"whiteout through symlink", []tarEntry{
			{name: "out", typ: tar.TypeSymlink, link: "../outside"},
			{name: "out/.wh.sentinel"},
		}, "out/.wh.sentinel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			root, outside := filepath.Join(top, "root"), filepath.Join(top, "outside")
			os.Mkdir(root, 0o755)
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "sentinel"), []byte("sentinel\n"), 0o644)
			err := Unpack(context.Background(), imageOf(t, buildTar(t, tt.entries)), root)
			// Names below symlinks and hard links to what the layer does not hold are refused
			// before anything is resolved (engines apply them otherwise), the rest as unsafe.
			refused := errors.Is(err, archive.ErrUnsafePath) || errors.Is(err, archive.ErrEngineDiffers)
			if !refused || !strings.Contains(err.Error(), `"`+tt.entry+`"`) {
				t.Fatalf("Unpack error = %v; want ErrUnsafePath naming %q", err, tt.entry)
			}
			checkOutside(t, top)
		})
	}
}

// checkOutside fails when anything but root/ and outside/sentinel exists under top.
func checkOutside(t testing.TB, top string) {
	t.Helper()
	entries, _ := os.ReadDir(top)
	out, _ := os.ReadDir(filepath.Join(top, "outside"))
	b, _ := os.ReadFile(filepath.Join(top, "outside", "sentinel"))
	fi, err := os.Lstat(filepath.Join(top, "outside", "sentinel"))
	if len(entries) != 2 || len(out) != 1 || string(b) != "sentinel\n" || err != nil || fi.Mode() != 0o644 || fi.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Fatalf("something was written outside the root: %v, %v, %q", entries, out, b)
	}
}

func TestUnpackMetadataAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("owners and device nodes need root")
	}
	layer := buildTar(t, []tarEntry{
		{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/bin/ping", body: "elf", mode: 0o4755, uid: 0, gid: 0, xattrs: map[string]string{"user.vm2image": "yes"}},
		{name: "home/app/", typ: tar.TypeDir, mode: 0o700, uid: 1001, gid: 1002},
		{name: "home/app/data", body: "data", mode: 0o600, uid: 1001, gid: 1002},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o620},
		{name: "link", typ: tar.TypeSymlink, link: "usr/bin/ping", uid: 1001, gid: 1002},
	})
	dir := t.TempDir()
	if err := Unpack(context.Background(), imageOf(t, layer), dir); err != nil {
		t.Fatal(err)
	}
	check := func(rel string, mode os.FileMode, uid, gid uint32) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
		}
		if !fi.IsDir() && fi.Mode()&os.ModeSymlink == 0 && fi.ModTime().Unix() != 1700000000 {
			t.Errorf("%s: mtime %v", rel, fi.ModTime())
		}
	}
	check("usr/bin/ping", 0o755|os.ModeSetuid, 0, 0)
	check("home/app", 0o700|os.ModeDir, 1001, 1002)
	check("home/app/data", 0o600, 1001, 1002)
	check("dev/null", 0o666|os.ModeDevice|os.ModeCharDevice, 0, 0)
	check("run/fifo", 0o620|os.ModeNamedPipe, 0, 0)
	check("link", 0o777|os.ModeSymlink, 1001, 1002)
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "usr/bin/ping"), "user.vm2image", buf); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Errorf("xattr: %v", err)
	} else if err == nil && string(buf[:n]) != "yes" {
		t.Errorf("xattr = %q", buf[:n])
	}
	if fi, _ := os.Stat(filepath.Join(dir, "dev/null")); fi.Sys().(*syscall.Stat_t).Rdev != unix.Mkdev(1, 3) {
		t.Error("dev/null has the wrong device number")
	}
}

func FuzzUnpackLayer(f *testing.F) {
	f.Add(buildTar(f, []tarEntry{{name: "a/", typ: tar.TypeDir}, {name: "a/b", body: "x"}, {name: "a/.wh.b"}}))
	f.Add(buildTar(f, []tarEntry{{name: "l", typ: tar.TypeSymlink, link: "../x"}, {name: "l/f", body: "x"}}))
	f.Add(buildTar(f, []tarEntry{{name: "d/.wh..wh..opq"}, {name: "h", typ: tar.TypeLink, link: "d"}}))
	f.Add(buildTar(f, []tarEntry{{name: "s", typ: tar.TypeSymlink, link: "/"}, {name: "s/etc/x", body: "x"}}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// tmpfs: thousands of executions create and delete files, which a disk mounted with
		// "discard" can make very slow.
		top := scratchDir(t)
		root := filepath.Join(top, "root")
		os.Mkdir(root, 0o755)
		os.Mkdir(filepath.Join(top, "outside"), 0o755)
		os.WriteFile(filepath.Join(top, "outside", "sentinel"), []byte("sentinel\n"), 0o644)
		_ = ApplyLayer(context.Background(), root, bytes.NewReader(data))
		checkOutside(t, top)
	})
}
