package builder

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A build's archive directory shares no inode with the shared cache: what a build (its
// maintainer scripts, a replaced apt) writes there cannot reach another build.
func TestSeededArchivesShareNoInode(t *testing.T) {
	shared, dir := t.TempDir(), filepath.Join(t.TempDir(), "archives")
	deb := []byte("!<arch>\nhonest package bytes")
	if err := os.WriteFile(filepath.Join(shared, "nginx_1.22_amd64.deb"), deb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := seedArchives(shared, dir, -1); err != nil {
		t.Fatal(err)
	}
	var a, b syscall.Stat_t
	if err := syscall.Stat(filepath.Join(shared, "nginx_1.22_amd64.deb"), &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(dir, "nginx_1.22_amd64.deb"), &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino == b.Ino {
		t.Fatal("the seeded .deb is a hard link of the shared one")
	}
	// The attack: rewrite the seeded file in place, same size, as a postinst could.
	evil := bytes.Repeat([]byte("X"), len(deb))
	f, err := os.OpenFile(filepath.Join(dir, "nginx_1.22_amd64.deb"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(evil, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := os.ReadFile(filepath.Join(shared, "nginx_1.22_amd64.deb"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, deb) {
		t.Fatalf("the shared .deb changed with the build's copy: %q", got)
	}
}

// The shared cache is partitioned by base and repository configuration: a hostile repository
// or base can only feed builds that already use it.
func TestArchiveShareKeyPartitions(t *testing.T) {
	in := Input{BaseDigest: "sha256:aa", RepoFiles: map[string][]byte{"etc/apt/sources.list": []byte("deb http://deb.debian.org/debian bookworm main\n")}}
	k := archiveShareKey(in)
	if k != archiveShareKey(in) || !validKey(k) {
		t.Fatalf("key %q not stable or not a valid cache name", k)
	}
	other := in
	other.BaseDigest = "sha256:bb"
	evil := in
	evil.RepoFiles = map[string][]byte{"etc/apt/sources.list": []byte("deb [trusted=yes] http://evil.example/ bookworm main\n")}
	if archiveShareKey(other) == k || archiveShareKey(evil) == k {
		t.Fatal("another base or another repository shares the partition")
	}
}

// Only the first download is published; what a later step downloads (after package code ran in
// the root) stays private.
func TestPublishOnlyFirstDownload(t *testing.T) {
	cacheDir, work := t.TempDir(), t.TempDir()
	b := &build{in: Input{BaseDigest: "sha256:aa"}, opts: Options{AptArchiveCache: cacheDir, Logf: t.Logf}}
	b.archives = filepath.Join(work, "archives")
	if err := os.MkdirAll(b.archives, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(b.archives, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("first_1_amd64.deb")
	b.publishOnce()
	write("later_1_amd64.deb")
	b.publishOnce()
	shared := filepath.Join(cacheDir, archiveShareKey(b.in))
	if _, err := os.Stat(filepath.Join(shared, "first_1_amd64.deb")); err != nil {
		t.Fatalf("the first download was not shared: %v", err)
	}
	if _, err := os.Stat(filepath.Join(shared, "later_1_amd64.deb")); err == nil {
		t.Fatal("a download made after package code ran was shared")
	}
}
