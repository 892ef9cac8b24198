package rpmfile

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

const testSpec = `Name: hello-vm
Version: 2.0
Release: 3
Epoch: 1
Summary: test
License: MIT
BuildArch: x86_64
%%description
test
%%install
mkdir -p %%{buildroot}/usr/bin %%{buildroot}/etc %%{buildroot}/usr/share/hello %%{buildroot}/var/cache/hello
printf '#!/bin/sh\necho hello\n' > %%{buildroot}/usr/bin/hello-vm
chmod 755 %%{buildroot}/usr/bin/hello-vm
ln -s hello-vm %%{buildroot}/usr/bin/hi
echo 'greeting = hello' > %%{buildroot}/etc/hello-vm.conf
head -c 300000 /dev/zero | tr '\0' 'a' > %%{buildroot}/usr/share/hello/big
echo 'same inode' > %%{buildroot}/usr/share/hello/a
ln %%{buildroot}/usr/share/hello/a %%{buildroot}/usr/share/hello/b
ln %%{buildroot}/usr/share/hello/a %%{buildroot}/usr/share/hello/c
echo 'cached' > %%{buildroot}/var/cache/hello/x
%%files
/usr/bin/hello-vm
/usr/bin/hi
%%config(noreplace) /etc/hello-vm.conf
%%dir /usr/share/hello
/usr/share/hello/big
/usr/share/hello/a
/usr/share/hello/b
/usr/share/hello/c
%%attr(0600,root,root) /var/cache/hello/x
`

// buildRPM makes a real .rpm with rpmbuild, its payload compressed by the io named (w9.gzdio,
// w6.xzdio, w19.zstdio, w9.bzdio).
func buildRPM(t *testing.T, payload string) string {
	t.Helper()
	testenv.RequireCommands(t, "rpmbuild")
	dir := t.TempDir()
	spec := filepath.Join(dir, "hello.spec")
	if err := os.WriteFile(spec, []byte(strings.ReplaceAll(testSpec, "%%", "%")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("rpmbuild", "-bb", "--define", "_topdir "+dir, "--define", "_binary_payload "+payload,
		"--define", "__os_install_post %{nil}", "--define", "_build_id_links none", "--define", "debug_package %{nil}", spec)
	cmd.Env = append(os.Environ(), "HOME="+dir, "LC_ALL=C")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, b)
	}
	return filepath.Join(dir, "RPMS/x86_64/hello-vm-2.0-3.x86_64.rpm")
}

// entries lists a tar as "name type mode owner link" and "name data sha256" lines; a hard
// link is listed as the file it links to (which name of a group carries the data is the
// archiver's choice: rpm2archive's first, the cpio archive's last).
func entries(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	data := map[string]string{}
	var links [][2]string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		sum := sha256.New()
		io.Copy(sum, tr)
		typ, link := h.Typeflag, h.Linkname
		if typ == tar.TypeLink {
			typ, link = tar.TypeReg, ""
			links = append(links, [2]string{name, strings.TrimPrefix(h.Linkname, "./")})
		} else if typ == tar.TypeReg {
			data[name] = fmt.Sprintf("%x", sum.Sum(nil))
		}
		out = append(out, fmt.Sprintf("%s %c %o %d:%d %q", name, typ, h.Mode&0o7777, h.Uid, h.Gid, link))
	}
	for _, l := range links {
		data[l[0]] = data[l[1]]
	}
	for name, d := range data {
		out = append(out, name+" data "+d)
	}
	slices.Sort(out)
	return out
}

// TestOpenMatchesRpm2archive: the identity is the header's, and the payload layer holds what
// rpm's own rpm2archive writes of the package (names, types, modes, owners, contents and link
// targets; hard links as links), less the excludes, for every payload compressor rpmbuild
// writes.
func TestOpenMatchesRpm2archive(t *testing.T) {
	testenv.RequireCommands(t, "rpm2archive")
	for _, payload := range []string{"w9.gzdio", "w6.xzdio", "w19.zstdio", "w9.bzdio"} {
		t.Run(payload, func(t *testing.T) {
			file := buildRPM(t, payload)
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p, err := Open(f)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != "hello-vm" || p.Version != "1:2.0-3" || p.Arch != "x86_64" {
				t.Errorf("identity %q %q %q", p.Name, p.Version, p.Arch)
			}
			var layer bytes.Buffer
			info, err := p.WriteLayer(&layer, []string{"/var/cache/*"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("rpm2archive", "-n", "-")
			cmd.Stdin, _ = os.Open(file)
			want, err := cmd.Output()
			if err != nil {
				t.Fatalf("rpm2archive: %v", err)
			}
			var wantLines []string
			for _, l := range entries(t, bytes.NewReader(want)) {
				if !strings.HasPrefix(l, "var/cache/") {
					wantLines = append(wantLines, l)
				}
			}
			got := entries(t, &layer)
			if !slices.Equal(got, wantLines) {
				t.Errorf("layer:\n%s\nrpm2archive:\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
			}
			if info.Dropped != 1 {
				t.Errorf("info %+v", info)
			}
		})
	}
}

// TestOpenRefusesBadInput: truncated, foreign and malformed packages are refused with ErrFormat.
func TestOpenRefusesBadInput(t *testing.T) {
	good, err := os.ReadFile(buildRPM(t, "w9.gzdio"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":        nil,
		"not rpm":      []byte("PK\x03\x04 a zip"),
		"lead only":    good[:leadSize],
		"truncated":    good[:leadSize+200],
		"no header":    append(append([]byte(nil), good[:leadSize]...), make([]byte, 64)...),
		"bad compress": withCompressor(t, good, "lzma"),
	} {
		if _, err := Open(bytes.NewReader(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

// withCompressor is the package b with its PAYLOADCOMPRESSOR value's bytes replaced by c (of
// the same length at most, NUL-padded).
func withCompressor(t *testing.T, b []byte, c string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte("gzip\x00"))
	if i < 0 {
		t.Fatal("no gzip compressor tag value")
	}
	out := append([]byte(nil), b...)
	copy(out[i:i+5], append([]byte(c), make([]byte, 5-len(c))...))
	return out
}

func sha(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
