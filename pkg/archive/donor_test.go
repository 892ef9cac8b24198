package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDonor: a file of the donor directory with the entry's size and mtime is moved into place
// (its own xattrs dropped, the entry's metadata set); anything else (another size, a symlink
// the size of the entry, a directory climbing out of the donor) comes from the stream.
func TestDonor(t *testing.T) {
	when := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct{ name, body string }{{"a", "one"}, {"dir/b", "two"}, {"c", "three"}, {"up/d", "four"}} {
		h := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o640, Size: int64(len(e.body)), ModTime: when,
			PAXRecords: map[string]string{PAXXattrPrefix + "user.keep": "yes"}}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	top, root := arena(t)
	donor := filepath.Join(top, "donor")
	os.MkdirAll(filepath.Join(donor, "dir"), 0o755)
	put := func(name, body string) {
		p := filepath.Join(donor, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, when, when)
	}
	put("a", "ONE") // same size and mtime: taken (the caller vouches for the contents)
	if err := unix.Lsetxattr(filepath.Join(donor, "a"), "user.overlay", []byte("x"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	put("dir/b", "TWO!") // another size
	os.WriteFile(filepath.Join(top, "outside", "five!"), []byte("FIVE!"), 0o644)
	os.Symlink("../outside/five!", filepath.Join(donor, "c")) // a symlink, even of the right size
	os.Symlink("../outside", filepath.Join(donor, "up"))      // a directory out of the donor
	os.WriteFile(filepath.Join(top, "outside", "d"), []byte("FOUR"), 0o644)
	os.Chtimes(filepath.Join(top, "outside", "d"), when, when)
	taken := 0
	if err := Apply(context.Background(), root, bytes.NewReader(buf.Bytes()), Layer(), Donor(donor, &taken)); err != nil {
		t.Fatal(err)
	}
	if taken != 1 {
		t.Errorf("%d files taken, want 1", taken)
	}
	for name, want := range map[string]string{"a": "ONE", "dir/b": "two", "c": "three", "up/d": "four"} {
		p := filepath.Join(root, name)
		b, err := os.ReadFile(p)
		fi, _ := os.Lstat(p)
		if err != nil || string(b) != want || fi.Mode() != 0o640 || !fi.ModTime().Equal(when) {
			t.Errorf("%s: %q, %v, %v; want %q, mode 0640, mtime %v", name, b, err, fi, want, when)
		}
		v := make([]byte, 8)
		if n, err := unix.Lgetxattr(p, "user.keep", v); err != nil || string(v[:max(n, 0)]) != "yes" {
			t.Errorf("%s: user.keep %q, %v", name, v[:max(n, 0)], err)
		}
	}
	if _, err := os.Lstat(filepath.Join(donor, "a")); !os.IsNotExist(err) {
		t.Errorf("donor's a still there: %v", err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(root, "a"), "user.overlay", make([]byte, 8)); err == nil {
		t.Error("the donor's own xattr user.overlay was kept")
	}
	if b, _ := os.ReadFile(filepath.Join(top, "outside", "five!")); string(b) != "FIVE!" {
		t.Errorf("outside file changed: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(top, "outside", "d")); string(b) != "FOUR" {
		t.Errorf("a file outside the donor was taken: %q", b)
	}
}
