package convert

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func tarOf(t testing.TB, hs ...*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("d"), int(h.Size)))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// TestRelocate: the volume archive names entries relative to the directory, keeps owners,
// modes and xattrs, rewrites hard links, leaves out the parents the stream carries, and the
// directory's own owner and mode become the mount point's.
func TestRelocate(t *testing.T) {
	in := tarOf(t,
		&tar.Header{Typeflag: tar.TypeDir, Name: "var/", Mode: 0o755},
		&tar.Header{Typeflag: tar.TypeDir, Name: "var/lib/pg/", Mode: 0o700, Uid: 105, Gid: 106},
		&tar.Header{Typeflag: tar.TypeReg, Name: "var/lib/pg/PG_VERSION", Mode: 0o600, Uid: 105, Gid: 106, Size: 3,
			PAXRecords: map[string]string{"SCHILY.xattr.user.note": "kept"}},
		&tar.Header{Typeflag: tar.TypeLink, Name: "var/lib/pg/again", Linkname: "var/lib/pg/PG_VERSION"},
	)
	var out bytes.Buffer
	var v Volume
	var d volumeDir
	if err := relocate(bytes.NewReader(in), &out, "var/lib/pg", &v, &d); err != nil {
		t.Fatal(err)
	}
	if d.uid != 105 || d.gid != 106 || d.mode != 0o700 || v.Entries != 3 || v.Bytes != 3 {
		t.Errorf("mount point %+v, volume %+v", d, v)
	}
	tr := tar.NewReader(&out)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name+">"+h.Linkname)
		if h.Name == "./PG_VERSION" && (h.Uid != 105 || h.Mode != 0o600 || h.PAXRecords["SCHILY.xattr.user.note"] != "kept") {
			t.Errorf("PG_VERSION lost its owner, mode or xattr: %+v", h)
		}
	}
	if got := names; len(got) != 3 || got[0] != "./>" || got[1] != "./PG_VERSION>" || got[2] != "./again>./PG_VERSION" {
		t.Errorf("names %q", got)
	}
}

// TestRelocateRefuses: a volume that is a symlink in the VM, and a hard link out of the volume.
func TestRelocateRefuses(t *testing.T) {
	var v Volume
	var d volumeDir
	link := tarOf(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "var/lib/pg", Linkname: "/etc"})
	if err := relocate(bytes.NewReader(link), io.Discard, "var/lib/pg", &v, &d); !errors.Is(err, ErrNotDirectory) {
		t.Errorf("symlinked volume: %v, want ErrNotDirectory", err)
	}
	out := tarOf(t, &tar.Header{Typeflag: tar.TypeDir, Name: "var/lib/pg/", Mode: 0o700},
		&tar.Header{Typeflag: tar.TypeLink, Name: "var/lib/pg/shadow", Linkname: "etc/shadow"})
	if err := relocate(bytes.NewReader(out), io.Discard, "var/lib/pg", &v, &d); err == nil {
		t.Errorf("a hard link out of the volume was accepted")
	}
	dots := tarOf(t, &tar.Header{Typeflag: tar.TypeDir, Name: "var/lib/pg/", Mode: 0o700},
		&tar.Header{Typeflag: tar.TypeReg, Name: "var/lib/pg/../../../../etc/cron.d/x", Size: 1})
	if err := relocate(bytes.NewReader(dots), io.Discard, "var/lib/pg", &v, &d); err == nil {
		t.Errorf("a name with .. was accepted")
	}
}

func FuzzRelocate(f *testing.F) {
	f.Add(tarOf(f, &tar.Header{Typeflag: tar.TypeDir, Name: "a/", Mode: 0o700}, &tar.Header{Typeflag: tar.TypeReg, Name: "a/b", Size: 2}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v Volume
		var d volumeDir
		var out bytes.Buffer
		if relocate(bytes.NewReader(b), &out, "a", &v, &d) != nil {
			return
		}
		tr := tar.NewReader(&out)
		for {
			h, err := tr.Next()
			if err != nil {
				return
			}
			if h.Name != "./" && (len(h.Name) < 2 || h.Name[:2] != "./") || slices.Contains(strings.Split(h.Name, "/"), "..") || slices.Contains(strings.Split(h.Linkname, "/"), "..") {
				t.Fatalf("entry %q escapes the volume's relative names", h.Name)
			}
		}
	})
}

func TestVolumeName(t *testing.T) {
	for _, c := range []struct{ tag, dir, want string }{
		{"example/db:1", "/var/lib/postgresql", "db-var-lib-postgresql"},
		{"registry.local:5000/web", "/srv/my data", "web-srv-my_data"},
		{"..", "/x", "v..-x"},
	} {
		if got := VolumeName(c.tag, c.dir); got != c.want {
			t.Errorf("VolumeName(%q, %q) = %q, want %q", c.tag, c.dir, got, c.want)
		}
	}
}
