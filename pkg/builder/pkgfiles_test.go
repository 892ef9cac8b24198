package builder

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// TestAttackCollectPackagesStaysInRoot: a build root whose package cache holds a symlink named
// like a package to a host file, a directory symlink out of the root, a dnf cache that is a
// link out of the root, a FIFO named like a package, a hidden file and a signature: only the
// real package file comes out; nothing of the host is copied into the archive share, and the
// FIFO does not hang the build.
func TestAttackCollectPackagesStaysInRoot(t *testing.T) {
	root, host := t.TempDir(), t.TempDir()
	secret := filepath.Join(host, "secret.pkg.tar.zst")
	if err := os.WriteFile(secret, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	pkgDir := filepath.Join(root, "var/cache/pacman/pkg")
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"good-1-1-x86_64.pkg.tar.zst": "pkg", "good-1-1-x86_64.pkg.tar.zst.sig": "sig", ".hidden.pkg.tar.zst": "x"} {
		if err := os.WriteFile(filepath.Join(pkgDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(secret, filepath.Join(pkgDir, "link-1-1-x86_64.pkg.tar.zst")))
	must(os.Symlink(host, filepath.Join(pkgDir, "out")))
	must(syscall.Mkfifo(filepath.Join(pkgDir, "fifo-1-1-x86_64.pkg.tar.zst"), 0o644)) // reading it would hang the build
	// The dnf cache itself a link out of the root.
	must(os.MkdirAll(filepath.Join(root, "var/cache"), 0o755))
	must(os.Symlink(host, filepath.Join(root, "var/cache/dnf")))
	archives := t.TempDir()
	for _, m := range []pkgmgr.Manager{pkgmgr.Pacman, pkgmgr.RPM} {
		b := &build{in: Input{Plan: &pkgmgr.Plan{Manager: m}}, be: &chroot{root: root}, archives: archives}
		if err := b.collectPackages(); err != nil {
			t.Logf("%s: %v", m, err)
		}
	}
	des, err := os.ReadDir(archives)
	must(err)
	var got []string
	for _, de := range des {
		got = append(got, de.Name())
	}
	if !slices.Equal(got, []string{"good-1-1-x86_64.pkg.tar.zst"}) {
		t.Errorf("collected %q, want only the root's real package file", got)
	}
}
