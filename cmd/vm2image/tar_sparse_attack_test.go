package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vm2image/vm2image/internal/testenv"
)

// TestAttackSparseTarSource: a hostile tar: export of a few KiB whose /var/log/lastlog is a
// 16 GiB sparse file (a real VM with high UIDs has one of that shape). Unpacking the source
// used to write the holes out as zeros and fill the work directory; the real binary, with its
// work directory on a 64 MiB tmpfs, now reads the source whole and leaves the holes unwritten.
func TestAttackSparseTarSource(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "tar", "truncate")
	bin := vm2imageBinary(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	must(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(src, "var/log"), 0o755))
	writeFile(t, filepath.Join(src, "etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
	lastlog := filepath.Join(src, "var/log/lastlog")
	writeFile(t, lastlog, "")
	f, err := os.OpenFile(lastlog, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("a login record"), 8<<30) // data in the middle, holes around it
	must(t, err)
	must(t, f.Truncate(16<<30))
	must(t, f.Close())
	export := filepath.Join(dir, "hostile.tar")
	if out, err := exec.Command("tar", "-C", src, "--sparse", "--format=posix", "-cf", export, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	must(t, os.RemoveAll(src))
	if fi, err := os.Stat(export); err != nil || fi.Size() > 1<<20 {
		t.Fatalf("the hostile export should be small: %v %v", fi.Size(), err)
	}
	work := filepath.Join(dir, "work")
	must(t, os.Mkdir(work, 0o700))
	must(t, unix.Mount("tmpfs", work, "tmpfs", 0, "size=64m,mode=0700"))
	t.Cleanup(func() { _ = unix.Unmount(work, unix.MNT_DETACH) })
	r := runBin(t, nil, bin, "inspect", "tar:"+export, "--work-dir", work)
	if r.err != nil || strings.Contains(r.stderr, "no space left") {
		t.Fatalf("inspect of the sparse export: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stdout, "Debian") {
		t.Errorf("inspect did not read the source:\n%s", r.stdout)
	}
}
