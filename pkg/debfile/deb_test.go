package debfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// buildDeb makes a real .deb with dpkg-deb, compressed with comp.
func buildDeb(t *testing.T, comp string) string {
	t.Helper()
	testenv.RequireCommands(t, "dpkg-deb")
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	for path, body := range map[string]string{
		"DEBIAN/control":       "Package: hello-vm\nVersion: 1:2.0-3\nArchitecture: amd64\nMaintainer: t <t@example.com>\nDescription: test\n multi-line\n",
		"usr/bin/hello-vm":     "#!/bin/sh\necho hello\n",
		"etc/hello-vm.conf":    "greeting = hello\n",
		"usr/share/doc/x/copy": string(bytes.Repeat([]byte("abc"), 100000)),
	} {
		p := filepath.Join(pkg, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(dir, "hello.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Z"+comp, "--build", pkg, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	return deb
}

// TestOpenMatchesDpkgDeb: the control fields and the data tar are what dpkg-deb itself reads
// (its --fsys-tarfile is the oracle), for every compression dpkg-deb writes.
func TestOpenMatchesDpkgDeb(t *testing.T) {
	for _, comp := range []string{"xz", "gzip", "zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			deb := buildDeb(t, comp)
			f, err := os.Open(deb)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p, err := Open(f)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != "hello-vm" || p.Version != "1:2.0-3" || p.Arch != "amd64" {
				t.Errorf("fields %q %q %q", p.Name, p.Version, p.Arch)
			}
			got, err := io.ReadAll(p.Data)
			if err != nil {
				t.Fatal(err)
			}
			want, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("data tar: %d bytes, dpkg-deb --fsys-tarfile gives %d", len(got), len(want))
			}
		})
	}
}

// TestOpenRefusesBadInput: truncated, foreign and misordered archives are refused with
// ErrFormat.
func TestOpenRefusesBadInput(t *testing.T) {
	good, err := os.ReadFile(buildDeb(t, "gzip"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":      nil,
		"not ar":     []byte("PK\x03\x04 a zip"),
		"truncated":  good[:200],
		"bad header": append([]byte(arMagic), bytes.Repeat([]byte("x"), 60)...),
		"no data":    good[:len(arMagic)+60+4],
	} {
		if _, err := Open(bytes.NewReader(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	f.Add([]byte(arMagic + "debian-binary   0           0     0     100644  4         `\n2.0\n"))
	if b, err := os.ReadFile("testdata/min.deb"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Open(bytes.NewReader(b))
		if err != nil {
			return
		}
		if p.Name == "" || p.Version == "" || p.Arch == "" {
			t.Fatalf("accepted a package without fields: %+v", p)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(p.Data, 1<<20))
	})
}
