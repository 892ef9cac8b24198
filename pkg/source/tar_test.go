package source

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type tent struct {
	name, link string
	typ        byte
	body       string
}

func buildTar(t testing.TB, ents []tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestUnpackRefusesHostileEntries(t *testing.T) {
	tests := []struct {
		name  string
		ents  []tent
		entry string
	}{
		{"dotdot", []tent{{name: "../escape", typ: tar.TypeReg, body: "x"}}, "../escape"},
		{"nested dotdot", []tent{{name: "a/../../escape", typ: tar.TypeReg, body: "x"}}, "a/../../escape"},
		{"absolute", []tent{{name: "/etc/evil", typ: tar.TypeReg, body: "x"}}, "/etc/evil"},
		{"write through symlink climbing from /", []tent{{name: "link", link: "/../..", typ: tar.TypeSymlink}, {name: "link/evil", typ: tar.TypeReg, body: "x"}}, "link/evil"},
		{"write through relative symlink out", []tent{{name: "up", link: "../../..", typ: tar.TypeSymlink}, {name: "up/evil", typ: tar.TypeReg, body: "x"}}, "up/evil"},
		{"hardlink out", []tent{{name: "h", link: "../../etc/passwd", typ: tar.TypeLink}}, "h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "root")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := Unpack(context.Background(), bytes.NewReader(buildTar(t, tt.ents)), dir, nil)
			if err == nil {
				t.Fatal("hostile archive unpacked without error")
			}
			if !strings.Contains(err.Error(), tt.entry) {
				t.Errorf("error %q does not name the entry %q", err, tt.entry)
			}
			if _, err := os.Lstat(filepath.Join(parent, "escape")); err == nil {
				t.Error("a file was written outside the directory")
			}
			if _, err := os.Lstat("/evil"); err == nil {
				t.Error("a file was written at /evil")
			}
		})
	}
}

func FuzzUnpack(f *testing.F) {
	f.Add(buildTar(f, []tent{{name: "a/b", typ: tar.TypeReg, body: "hello"}, {name: "l", link: "a/b", typ: tar.TypeLink}}))
	f.Add(buildTar(f, []tent{{name: "s", link: "/", typ: tar.TypeSymlink}, {name: "s/x", typ: tar.TypeReg, body: "x"}}))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if claimedSize(b) > 64<<20 {
			// A sparse entry may claim any size in a few bytes, and its holes are read as zeros
			// at memory speed (docs/security.md, known gaps): not what this fuzzer looks for.
			t.Skip("entries claim more than 64 MiB")
		}
		parent := t.TempDir()
		dir := filepath.Join(parent, "root")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = Unpack(context.Background(), bytes.NewReader(b), dir, nil)
		ents, _ := os.ReadDir(parent)
		if len(ents) != 1 {
			t.Fatalf("unpacking wrote outside its directory: %v", ents)
		}
	})
}

// claimedSize is the sum of the sizes the tar stream in b claims for its entries.
func claimedSize(b []byte) int64 {
	r, err := Decompress(bytes.NewReader(b))
	if err != nil {
		return 0
	}
	defer r.Close()
	var n int64
	tr := tar.NewReader(r)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		n += max(h.Size, 0)
	}
	return n
}
