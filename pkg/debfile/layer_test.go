package debfile

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/archive"
)

func openDeb(t *testing.T, path string) *Package {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	p, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWriteLayerIsThePayload: the layer, applied to an empty root, gives the tree dpkg-deb -x
// extracts (names, modes, contents, link targets); it is the same blob every time; excludes
// leave their subtrees out.
func TestWriteLayerIsThePayload(t *testing.T) {
	testenv.RequireRoot(t) // owners
	deb := buildDeb(t, "xz")
	var a, b bytes.Buffer
	ia, err := openDeb(t, deb).WriteLayer(&a, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := openDeb(t, deb).WriteLayer(&b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ia.DiffID != ib.DiffID || !bytes.Equal(a.Bytes(), b.Bytes()) || ia.Size != int64(a.Len()) {
		t.Errorf("two layers of one .deb differ: %+v %+v", ia, ib)
	}
	applied, extracted := t.TempDir(), t.TempDir()
	if err := archive.Apply(context.Background(), applied, bytes.NewReader(a.Bytes()), archive.Layer()); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dpkg-deb", "-x", deb, extracted).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	if got, want := listTree(t, applied), listTree(t, extracted); got != want {
		t.Errorf("layer applied:\n%s\ndpkg-deb -x:\n%s", got, want)
	}
	var c bytes.Buffer
	ic, err := openDeb(t, deb).WriteLayer(&c, []string{"/usr/share/doc"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ic.Dropped == 0 || strings.Contains(c.String(), "usr/share/doc/x/copy") || ic.DiffID == ia.DiffID {
		t.Errorf("excludes: %+v", ic)
	}
}

func listTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %d %x", len(b), b[:min(len(b), 8)])
		}
		lines = append(lines, line)
		return nil
	})
	return strings.Join(lines, "\n")
}

// arFile assembles an ar archive.
func arFile(members ...[2]string) []byte {
	var b bytes.Buffer
	b.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m[0], "0", "0", "0", "100644", len(m[1]))
		b.WriteString(m[1])
		if len(m[1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func tarOf(t *testing.T, entries ...tar.Header) string {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		h := h
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return b.String()
}

// TestWriteLayerRefusesHostilePayloads: a .deb whose data climbs out of the root, carries a
// whiteout, hard-links outside or writes through a symlink it ships itself is refused, and
// nothing is written for it.
func TestWriteLayerRefusesHostilePayloads(t *testing.T) {
	var cb bytes.Buffer
	tw := tar.NewWriter(&cb)
	body := "Package: evil\nVersion: 1\nArchitecture: all\n"
	tw.WriteHeader(&tar.Header{Name: "./control", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	tw.Write([]byte(body))
	tw.Close()
	control := cb.String()
	for name, data := range map[string]string{
		"climbs":   tarOf(t, tar.Header{Name: "./../../etc/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}),
		"absolute": tarOf(t, tar.Header{Name: "/etc/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}),
		"whiteout": tarOf(t, tar.Header{Name: "./etc/.wh.passwd", Typeflag: tar.TypeReg, Mode: 0o644}),
		"hardlink": tarOf(t, tar.Header{Name: "./x", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}),
		"through its own symlink": tarOf(t, tar.Header{Name: "./usr/lib/evil", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			tar.Header{Name: "./usr/lib/evil/cron.d/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}),
	} {
		deb := arFile([2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar", control}, [2]string{"data.tar", data})
		p, err := Open(bytes.NewReader(deb))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out bytes.Buffer
		if _, err := p.WriteLayer(&out, nil, nil); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

func TestThroughLinks(t *testing.T) {
	links := map[string]string{"bin": "usr/bin", "lib": "usr/lib", "usr/lib/x": "opt/x", "var/run": "run"}
	for in, want := range map[string]string{
		"bin/ip":            "usr/bin/ip",
		"bin":               "bin",
		"lib/x/y":           "opt/x/y", // lib -> usr/lib, then usr/lib/x -> opt/x
		"usr/bin/ip":        "usr/bin/ip",
		"var/run/nginx.pid": "run/nginx.pid",
		"binary/x":          "binary/x",
	} {
		if got := throughLinks(in, links); got != want {
			t.Errorf("throughLinks(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteLayerEachPathOnce: a .deb that ships lib/x86_64-linux-gnu/ and
// usr/lib/x86_64-linux-gnu/ (as Debian's libraries do) lands both at usr/lib/x86_64-linux-gnu
// through a merged-/usr base's links: the layer holds that directory once (Docker refuses a
// layer holding a path twice). A file that lands twice is refused with ErrDuplicate.
func TestWriteLayerEachPathOnce(t *testing.T) {
	var cb bytes.Buffer
	tw := tar.NewWriter(&cb)
	body := "Package: libx\nVersion: 1\nArchitecture: amd64\n"
	tw.WriteHeader(&tar.Header{Name: "./control", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	tw.Write([]byte(body))
	tw.Close()
	links := map[string]string{"lib": "usr/lib"}
	deb := func(entries ...tar.Header) *Package {
		p, err := Open(bytes.NewReader(arFile([2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar", cb.String()},
			[2]string{"data.tar", tarOf(t, entries...)})))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	dirs := []tar.Header{
		{Name: "./lib/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./lib/x86_64-linux-gnu/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./lib/x86_64-linux-gnu/libx.so.1", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3},
		{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/lib/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/lib/x86_64-linux-gnu/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/lib/x86_64-linux-gnu/libx.so", Typeflag: tar.TypeSymlink, Linkname: "libx.so.1"},
	}
	var out bytes.Buffer
	if _, err := deb(dirs...).WriteLayer(&out, nil, links); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	tr := tar.NewReader(&out)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		seen[h.Name]++
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("%s %d times in the layer", name, n)
		}
	}
	if seen["usr/lib/x86_64-linux-gnu/"] != 1 || seen["usr/lib/x86_64-linux-gnu/libx.so.1"] != 1 || seen["usr/lib/x86_64-linux-gnu/libx.so"] != 1 {
		t.Errorf("entries %v", seen)
	}
	twice := append(dirs, tar.Header{Name: "./usr/lib/x86_64-linux-gnu/libx.so.1", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	if _, err := deb(twice...).WriteLayer(io.Discard, nil, links); !errors.Is(err, ErrDuplicate) {
		t.Errorf("a file landing twice: %v, want ErrDuplicate", err)
	}
}
