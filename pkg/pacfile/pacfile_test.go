package pacfile

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/debfile"
)

// buildPkg makes a real package with bsdtar as makepkg lays it out (metadata members first),
// compressed as suffix says.
func buildPkg(t *testing.T, suffix string) string {
	t.Helper()
	testenv.RequireCommands(t, "bsdtar")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for path, body := range map[string]string{
		".PKGINFO":            "# generated\npkgname = hello-vm\npkgbase = hello-vm\npkgver = 1:2.0-3\narch = x86_64\nsize = 10\n",
		".INSTALL":            "post_install() { :; }\n",
		"usr/bin/hello-vm":    "#!/bin/sh\necho hello\n",
		"etc/hello-vm.conf":   "greeting = hello\n",
		"usr/share/doc/x/big": strings.Repeat("abc", 100000),
		"var/cache/x/skipped": "excluded\n",
	} {
		p := filepath.Join(src, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("hello-vm", filepath.Join(src, "usr/bin/hi")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello-vm-1:2.0-3-x86_64"+suffix)
	cmd := exec.Command("bsdtar", "-a", "--uid", "0", "--gid", "0", "-cf", out, ".PKGINFO", ".INSTALL", "etc", "usr", "var")
	cmd.Dir = src
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bsdtar: %v\n%s", err, b)
	}
	return out
}

// TestOpenMatchesBsdtar: the fields are .PKGINFO's and the payload layer holds exactly what
// bsdtar lists of the package beside its metadata members and the excludes, for every
// compression pacman packages use.
func TestOpenMatchesBsdtar(t *testing.T) {
	for _, suffix := range Suffixes {
		t.Run(suffix, func(t *testing.T) {
			file := buildPkg(t, suffix)
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p, err := Open(file, f)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != "hello-vm" || p.Version != "1:2.0-3" || p.Arch != "x86_64" {
				t.Errorf("fields %q %q %q", p.Name, p.Version, p.Arch)
			}
			var layer bytes.Buffer
			info, err := p.WriteLayer(&layer, []string{"/var/cache/*"}, map[string]string{"bin": "usr/bin"})
			if err != nil {
				t.Fatal(err)
			}
			listed, err := exec.Command("bsdtar", "-tf", file).Output()
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, n := range strings.Fields(string(listed)) {
				n = strings.TrimSuffix(n, "/")
				if !strings.HasPrefix(n, ".") && !strings.HasPrefix(n, "var/cache/") {
					want = append(want, n)
				}
			}
			got := layerNames(t, layer.Bytes())
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("layer %v\nbsdtar %v", got, want)
			}
			if info.Dropped != 2 || info.Entries != len(want) {
				t.Errorf("info %+v", info)
			}
		})
	}
}

func layerNames(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimSuffix(h.Name, "/"))
	}
}

// zstTar is a .pkg.tar.zst of the entries (a body of Size 'x' bytes for each regular file).
func zstTar(t *testing.T, entries ...tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := zstd.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		body := []byte(strings.Repeat("x", int(h.Size)))
		if h.Name == ".PKGINFO" {
			body = []byte(h.Uname)
			h.Size, h.Uname = int64(len(body)), ""
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// info is a .PKGINFO entry (its text carried in Uname, see zstTar).
func info(text string) tar.Header {
	return tar.Header{Name: ".PKGINFO", Typeflag: tar.TypeReg, Mode: 0o644, Uname: text}
}

// TestOpenRefusesBadInput: foreign, truncated and misordered packages are refused with
// ErrFormat.
func TestOpenRefusesBadInput(t *testing.T) {
	good := info("pkgname = a\npkgver = 1-1\narch = any\n")
	file := zstTar(t, good, tar.Header{Name: "usr/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	for name, c := range map[string]struct {
		file string
		b    []byte
	}{
		"not zstd":        {"a-1-1-any.pkg.tar.zst", []byte("PK\x03\x04 a zip")},
		"unknown suffix":  {"a-1-1-any.pkg.tar.lz4", file},
		"truncated":       {"a-1-1-any.pkg.tar.zst", file[:20]},
		"no fields":       {"a-1-1-any.pkg.tar.zst", zstTar(t, info("pkgname = a\n"))},
		"file before":     {"a-1-1-any.pkg.tar.zst", zstTar(t, tar.Header{Name: "usr/x", Typeflag: tar.TypeReg, Size: 1}, good)},
		"no .PKGINFO":     {"a-1-1-any.pkg.tar.zst", zstTar(t, tar.Header{Name: ".MTREE", Typeflag: tar.TypeReg, Size: 1})},
		"huge .PKGINFO":   {"a-1-1-any.pkg.tar.zst", zstTar(t, tar.Header{Name: ".PKGINFO", Typeflag: tar.TypeReg, Size: maxInfo + 1})},
		".PKGINFO a link": {"a-1-1-any.pkg.tar.zst", zstTar(t, tar.Header{Name: ".PKGINFO", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})},
	} {
		if _, err := Open(c.file, bytes.NewReader(c.b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

// TestAttackHostilePackage: a hostile repository's packages, written as an attacker would: a
// payload climbing out of the root, an absolute symlink and a file written through it, a hard
// link to a host file, a whiteout. Each is refused (debfile.ErrPayload) and no layer comes of
// it.
func TestAttackHostilePackage(t *testing.T) {
	pi := info("pkgname = evil\npkgver = 1-1\narch = x86_64\n")
	for name, entries := range map[string][]tar.Header{
		"climbs":   {{Name: "../../../etc/cron.d/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}},
		"absolute": {{Name: "/etc/cron.d/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}},
		"through an absolute symlink": {
			{Name: "usr/lib/evil", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "usr/lib/evil/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}},
		"through a relative symlink": {
			{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "usr/up", Typeflag: tar.TypeSymlink, Linkname: "../../../.."},
			{Name: "usr/up/root/.ssh/authorized_keys", Typeflag: tar.TypeReg, Mode: 0o600, Size: 4}},
		"hard link out": {{Name: "usr/shadow", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}},
		"hard link via symlink": {
			{Name: "usr/e", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "usr/shadow", Typeflag: tar.TypeLink, Linkname: "usr/e/shadow"}},
		"whiteout": {{Name: "etc/.wh.passwd", Typeflag: tar.TypeReg, Mode: 0o644}},
	} {
		file := zstTar(t, append([]tar.Header{pi}, entries...)...)
		p, err := Open("evil-1-1-x86_64.pkg.tar.zst", bytes.NewReader(file))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := p.WriteLayer(io.Discard, nil, nil); !errors.Is(err, debfile.ErrPayload) {
			t.Errorf("%s: %v, want ErrPayload", name, err)
		}
	}
}

// TestAttackHugeDeclaredSize: an entry declaring 1 TiB with a few bytes behind it ends in an
// error, having allocated nothing of its size.
func TestAttackHugeDeclaredSize(t *testing.T) {
	var b bytes.Buffer
	zw, _ := zstd.NewWriter(&b)
	tw := tar.NewWriter(zw)
	body := "pkgname = big\npkgver = 1-1\narch = any\n"
	tw.WriteHeader(&tar.Header{Name: ".PKGINFO", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	tw.Write([]byte(body))
	tw.WriteHeader(&tar.Header{Name: "usr/big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40})
	tw.Write([]byte("only this"))
	tw.Flush()
	zw.Close()
	p, err := Open("big-1-1-any.pkg.tar.zst", &b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteLayer(io.Discard, nil, nil); !errors.Is(err, debfile.ErrPayload) {
		t.Errorf("a 1 TiB entry of 9 bytes: %v, want ErrPayload", err)
	}
}

func FuzzOpen(f *testing.F) {
	var b bytes.Buffer
	zw, _ := zstd.NewWriter(&b)
	tw := tar.NewWriter(zw)
	body := "pkgname = a\npkgver = 1-1\narch = any\n"
	tw.WriteHeader(&tar.Header{Name: ".PKGINFO", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	tw.Write([]byte(body))
	tw.WriteHeader(&tar.Header{Name: "usr/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	zw.Close()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Open("a-1-1-any.pkg.tar.zst", bytes.NewReader(b))
		if err != nil {
			return
		}
		if p.Name == "" || p.Version == "" || p.Arch == "" {
			t.Fatalf("accepted a package without fields: %+v", p)
		}
		var out bytes.Buffer
		if _, err := p.WriteLayer(&out, nil, nil); err != nil {
			return
		}
		tr := tar.NewReader(&out)
		for h, err := tr.Next(); err == nil; h, err = tr.Next() {
			if strings.HasPrefix(h.Name, "/") || strings.Contains("/"+h.Name+"/", "/../") {
				t.Fatalf("layer holds %q", h.Name)
			}
		}
	})
}
