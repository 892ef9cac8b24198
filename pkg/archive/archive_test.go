package archive

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
)

type ent struct {
	name, link, body string
	typ              byte
}

func buildTar(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o644, Devmajor: 1, Devminor: 3}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// arena makes top/root (empty) and top/outside/sentinel, the file an attacker wants.
func arena(t testing.TB) (top, root string) {
	t.Helper()
	top = t.TempDir()
	root = filepath.Join(top, "root")
	os.Mkdir(root, 0o755)
	os.Mkdir(filepath.Join(top, "outside"), 0o755)
	os.WriteFile(filepath.Join(top, "outside", "sentinel"), []byte("sentinel\n"), 0o644)
	return top, root
}

// checkOutside fails when anything but root/ and an untouched outside/sentinel is under top.
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

// TestApplyRefusesEscapes is what an attacker sends: every entry tries to write, link or
// delete outside the root, in both modes.
func TestApplyRefusesEscapes(t *testing.T) {
	out := ent{name: "out", link: "../outside", typ: tar.TypeSymlink}
	tests := []struct {
		name  string
		ents  []ent
		entry string // the entry the error must name
	}{
		{"dotdot", []ent{{name: "../sentinel", body: "x"}}, "../sentinel"},
		{"dotdot inside", []ent{{name: "a/../../outside/sentinel", body: "x"}}, "a/../../outside/sentinel"},
		{"absolute", []ent{{name: "/tmp/escaped", body: "x"}}, "/tmp/escaped"},
		{"absolute symlink climbing", []ent{{name: "run", link: "/../../outside", typ: tar.TypeSymlink}, {name: "run/new", body: "x"}}, "run/new"},
		{"write through symlink", []ent{out, {name: "out/sentinel", body: "x"}}, "out/sentinel"},
		{"write through symlink chain", []ent{{name: "a/", typ: tar.TypeDir}, {name: "a/up", link: "..", typ: tar.TypeSymlink},
			{name: "a/up2", link: "up/..", typ: tar.TypeSymlink}, {name: "a/up2/outside/new", body: "x"}}, "a/up2/outside/new"},
		{"dir through symlink", []ent{out, {name: "out/d/", typ: tar.TypeDir}}, "out/d/"},
		{"hard link out", []ent{{name: "h", link: "../outside/sentinel", typ: tar.TypeLink}}, "h"},
		{"hard link through symlink", []ent{out, {name: "h", link: "out/sentinel", typ: tar.TypeLink}}, "h"},
		{"hard link absolute", []ent{{name: "h", link: "/etc/passwd", typ: tar.TypeLink}}, "h"},
	}
	for _, tt := range tests {
		for _, layer := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				top, root := arena(t)
				var opts []Option
				if layer {
					opts = append(opts, Layer())
				}
				err := Apply(context.Background(), root, bytes.NewReader(buildTar(t, tt.ents)), opts...)
				// A layer refuses names below symlinks and hard links to what it does not
				// hold before anything is resolved: an engine applies those otherwise.
				refused := errors.Is(err, ErrUnsafePath) || (layer && errors.Is(err, ErrEngineDiffers))
				if !refused || !strings.Contains(err.Error(), `"`+tt.entry+`"`) {
					t.Fatalf("Apply error = %v; want ErrUnsafePath naming %q", err, tt.entry)
				}
				checkOutside(t, top)
			})
		}
	}
}

// TestWhiteoutsCannotEscape: whiteouts and opaque markers that aim outside the root.
func TestWhiteoutsCannotEscape(t *testing.T) {
	out := ent{name: "out", link: "../outside", typ: tar.TypeSymlink}
	for name, ents := range map[string][]ent{
		"whiteout of ../sentinel":   {{name: "../outside/.wh.sentinel"}},
		"whiteout of ..":            {{name: ".wh.."}},
		"whiteout through symlink":  {out, {name: "out/.wh.sentinel"}},
		"opaque above the root":     {{name: "../outside/.wh..wh..opq"}},
		"opaque through symlink":    {out, {name: "out/.wh..wh..opq"}},
		"opaque through dotdot dir": {{name: "a/../../outside/.wh..wh..opq"}},
	} {
		t.Run(name, func(t *testing.T) {
			top, root := arena(t)
			err := Apply(context.Background(), root, bytes.NewReader(buildTar(t, ents)), Layer())
			if !errors.Is(err, ErrUnsafePath) && !errors.Is(err, ErrEngineDiffers) {
				t.Fatalf("Apply error = %v; want ErrUnsafePath or ErrEngineDiffers", err)
			}
			checkOutside(t, top)
		})
	}
}

// TestAbsoluteSymlinksCountFromRoot: as in a chroot, a write through "abs -> /" lands in the
// root, never on the host.
func TestAbsoluteSymlinksCountFromRoot(t *testing.T) {
	top, root := arena(t)
	ents := []ent{{name: "abs", link: "/", typ: tar.TypeSymlink}, {name: "abs/outside/sentinel", body: "mine\n"},
		{name: "run", link: "/outside", typ: tar.TypeSymlink}, {name: "run/pid", body: "1\n"}}
	if err := Apply(context.Background(), root, bytes.NewReader(buildTar(t, ents))); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "outside/sentinel")); err != nil || string(b) != "mine\n" {
		t.Errorf("root/outside/sentinel = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "outside/pid")); err != nil || string(b) != "1\n" {
		t.Errorf("root/outside/pid = %q, %v", b, err)
	}
	checkOutside(t, top)
}

// TestDeviceNodesNeedPrivilege: without the privilege to make devices, a device entry makes
// nothing (a fifo is still made), in the strict mode too.
func TestDeviceNodesNeedPrivilege(t *testing.T) {
	_, root := arena(t)
	ents := []ent{{name: "dev/null", typ: tar.TypeChar}, {name: "dev/sda", typ: tar.TypeBlock}, {name: "dev/fifo", typ: tar.TypeFifo}}
	if err := Apply(context.Background(), root, bytes.NewReader(buildTar(t, ents)), Layer(), withPrivileged(false)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"dev/null", "dev/sda"} {
		if _, err := os.Lstat(filepath.Join(root, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was made without privilege: %v", n, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(root, "dev/fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("dev/fifo: %v, %v", fi, err)
	}
}

// TestPlainKeepsWhiteoutNames: outside a layer, ".wh." names are files like any other.
func TestPlainKeepsWhiteoutNames(t *testing.T) {
	_, root := arena(t)
	os.WriteFile(filepath.Join(root, "keep"), []byte("k"), 0o644)
	ents := []ent{{name: ".wh.keep", body: "x"}, {name: ".wh..wh..opq", body: "y"}}
	if err := Apply(context.Background(), root, bytes.NewReader(buildTar(t, ents))); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"keep", ".wh.keep", ".wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(root, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

func TestSafeName(t *testing.T) {
	for name, want := range map[string]string{"./etc/passwd": "etc/passwd", "etc/": "etc", "./": ".", "": ".", "a//b": "a/b", "a/./b": "a/b"} {
		if got, err := SafeName(name); err != nil || got != want {
			t.Errorf("SafeName(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"/abs", "..", "a/../..", "a/../b", "a/\x00", "../x"} {
		if _, err := SafeName(name); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("SafeName(%q): %v, want ErrUnsafePath", name, err)
		}
	}
}

// FuzzApply feeds arbitrary bytes as a layer: never a panic, never a write outside the root.
func FuzzApply(f *testing.F) {
	f.Add(buildTar(f, []ent{{name: "a/", typ: tar.TypeDir}, {name: "a/b", body: "x"}, {name: "a/.wh.b"}}))
	f.Add(buildTar(f, []ent{{name: "l", link: "../outside", typ: tar.TypeSymlink}, {name: "l/f", body: "x"}}))
	f.Add(buildTar(f, []ent{{name: "d/.wh..wh..opq"}, {name: "h", link: "d", typ: tar.TypeLink}}))
	f.Add(buildTar(f, []ent{{name: "s", link: "/", typ: tar.TypeSymlink}, {name: "s/etc/x", body: "x"}}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, root := arena(t)
		_ = Apply(context.Background(), root, bytes.NewReader(data), Layer())
		checkOutside(t, top)
	})
}
