package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// TestDiskLVMAppliance: a disk whose root and /var are logical volumes of a volume group
// (fstab: /dev/mapper/VG-root and /dev/VG/var) read through libguestfs's appliance equals the
// directory: inspection found the root on the LV and the fstab's /var LV was mounted (else
// /var, the package database among it, would be empty). The image file is not written to,
// nothing is left attached.
func TestDiskLVMAppliance(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "guestfish")
	d := testenv.LVMDisks(t, testenv.WebVM)
	diffDiskAgainstRef(t, vm2imageBinary(t), d.Ref, d.Raw)
}

// TestDiskLVMTrustedRefusedAttack: with --trust-disk, an LVM disk (its VG named by the guest)
// must not reach the host's LVM: the run fails naming the LVM physical volume and the way to
// read it (without --trust-disk), before anything is attached; the host's LVM configuration,
// metadata backups, hints and device-mapper table are unchanged, and the image too.
func TestDiskLVMTrustedRefusedAttack(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "unshare", "nsenter", "mount", "blkid", "losetup")
	d := testenv.LVMDisks(t, testenv.WebVM)
	sum := testenv.FileSHA256(t, d.Raw)
	before := hostLVMState(t)
	r := runBin(t, nil, vm2imageBinary(t), "inspect", "disk:"+d.Raw, "--trust-disk", "--work-dir", t.TempDir())
	if r.err == nil {
		t.Fatalf("inspect --trust-disk of an LVM disk succeeded:\n%s", r.stdout)
	}
	for _, want := range []string{"partition 1 is an LVM physical volume", "without --trust-disk"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error does not say %q:\n%s", want, r.stderr)
		}
	}
	if after := hostLVMState(t); after != before {
		t.Errorf("the host's LVM state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := testenv.FileSHA256(t, d.Raw); got != sum {
		t.Errorf("%s was written to", d.Raw)
	}
	assertNothingAttached(t, d.Raw)
}

// hostLVMState is what a run could change in the host's LVM: the files under /etc/lvm and
// /run/lvm (names and digests) and the device-mapper table (dmsetup's answer, an error
// included: this machine's kernel may have no device-mapper).
func hostLVMState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, dir := range []string{"/etc/lvm", "/run/lvm"} {
		filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			c, _ := os.ReadFile(p)
			s := sha256.Sum256(c)
			b.WriteString(p + " " + hex.EncodeToString(s[:8]) + "\n")
			return nil
		})
	}
	out, _ := exec.Command("dmsetup", "table").CombinedOutput()
	b.WriteString("dmsetup table: " + string(out))
	return b.String()
}

// TestDiskLVMFstabPathTrickAttack: the guest's fstab names /var's volume as
// /dev/VG/../../../etc/passwd. Through the appliance the entry is left out with a note naming
// it (nothing is mounted from a path the guest built), /var is the root's own empty
// directory, the image is not written to and nothing is left attached.
func TestDiskLVMFstabPathTrickAttack(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "guestfish", "tar")
	d := testenv.HostileLVMDisk(t, testenv.WebVM)
	sum := testenv.FileSHA256(t, d.Raw)
	out := filepath.Join(t.TempDir(), "x.tar")
	r := runBin(t, applianceEnv, vm2imageBinary(t), "export", "disk:"+d.Raw, "-o", out, "--work-dir", t.TempDir(), "-v")
	if r.err != nil {
		t.Fatalf("export: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "disk: mounting /dev/"+d.VG+"/root at /") {
		t.Errorf("the root LV was not mounted:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, " at /var") {
		t.Errorf("something was mounted at /var:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "../../../etc/passwd") || !strings.Contains(r.stderr, "left out") {
		t.Errorf("no note about the fstab entry left out:\n%s", r.stderr)
	}
	list, err := exec.Command("tar", "-tf", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(list), "\n") {
		if strings.HasPrefix(strings.TrimPrefix(l, "./"), "var/") && strings.TrimPrefix(l, "./") != "var/" {
			t.Fatalf("/var holds %s: something was mounted there", l)
		}
	}
	if !strings.Contains(string(list), "etc/passwd") {
		t.Errorf("the root was not exported:\n%.2000s", list)
	}
	if got := testenv.FileSHA256(t, d.Raw); got != sum {
		t.Errorf("%s was written to", d.Raw)
	}
	assertNothingAttached(t, d.Raw)
}
