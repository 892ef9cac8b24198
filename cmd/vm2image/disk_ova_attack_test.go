package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestAttackDiskSparseOVA: an OVA of a few KiB whose disk member is a sparse tar entry (PAX
// GNU.sparse records: 16 GiB of holes). Copied out as it reads, it would write 16 GiB of zeros
// into the work directory from a 10 KiB file and fill the filesystem. The work directory is a
// 64 MiB tmpfs: the run must refuse the member by name, before writing it.
func TestAttackDiskSparseOVA(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "tar", "truncate")
	bin := vm2imageBinary(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	must(t, os.Mkdir(src, 0o755))
	if out, err := exec.Command("truncate", "-s", "16G", filepath.Join(src, "disk.vmdk")).CombinedOutput(); err != nil {
		t.Fatalf("truncate: %v\n%s", err, out)
	}
	ova := filepath.Join(dir, "hostile.ova")
	if out, err := exec.Command("tar", "-C", src, "--sparse", "--format=posix", "-cf", ova, "disk.vmdk").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	must(t, os.Remove(filepath.Join(src, "disk.vmdk")))
	work := filepath.Join(dir, "work")
	must(t, os.Mkdir(work, 0o700))
	must(t, unix.Mount("tmpfs", work, "tmpfs", 0, "size=64m,mode=0700"))
	t.Cleanup(func() { _ = unix.Unmount(work, unix.MNT_DETACH) })
	r := runBin(t, applianceEnv, bin, "inspect", "disk:"+ova, "--work-dir", work)
	if r.err == nil || !strings.Contains(r.stderr, "sparse") {
		t.Errorf("want an error naming the sparse member, got %v\n%s", r.err, r.stderr)
	}
	if strings.Contains(r.stderr, "no space left") {
		t.Errorf("the sparse member was written out: %s", r.stderr)
	}
	assertNothingAttached(t, ova)
}
