package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// diskExcludes: mkfs.ext4 makes lost+found at the root of each filesystem, which the
// reference directory has not.
var diskExcludes = []string{"--exclude", "/lost+found", "--exclude", "/var/lost+found"}

// applianceEnv runs libguestfs's appliance under TCG: nested KVM hangs the appliance's boot
// on this machine and on CI runners.
var applianceEnv = []string{"LIBGUESTFS_BACKEND=direct", "LIBGUESTFS_BACKEND_SETTINGS=force_tcg"}

// diffDiskAgainstRef runs `vm2image diff dir:REF disk:IMAGE --strategy checksum --json` and
// fails on any difference: the disk's tree (root, fstab mounts) equals the directory's.
func diffDiskAgainstRef(t *testing.T, bin, ref, image string, extra ...string) {
	t.Helper()
	sum := testenv.FileSHA256(t, image)
	args := append([]string{"diff", "dir:" + ref, "disk:" + image, "--strategy", "checksum", "--json", "--work-dir", t.TempDir()}, diskExcludes...)
	r := runBin(t, applianceEnv, bin, append(args, extra...)...)
	if r.err != nil {
		t.Fatalf("diff: %v\n%s", r.err, r.stderr)
	}
	var rep DiffReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("diff --json: %v\n%s", err, r.stdout)
	}
	if len(rep.Changes) != 0 || rep.Stats.NewEntries != rep.Stats.OldEntries || rep.Stats.NewEntries < 1000 {
		n := min(len(rep.Changes), 20)
		t.Errorf("%s differs from the directory: %+v\nfirst changes: %+v", filepath.Base(image), rep.Stats, rep.Changes[:n])
	}
	if got := testenv.FileSHA256(t, image); got != sum {
		t.Errorf("%s was written to: sha256 %s, then %s", image, sum, got)
	}
	assertNothingAttached(t, image)
}

// TestDiskFormatsTrusted: the WebVM root as raw, qcow2, VMDK (monolithic sparse and stream
// optimized), VHDX, VHD and OVA, read by the trusted path (loop mounts in a private
// namespace), each equals the directory: root and /var from the fstab's second partition,
// contents, owners, modes, links, xattrs (the file capability). No image is written to.
func TestDiskFormatsTrusted(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "unshare", "nsenter", "mount", "blkid", "losetup")
	set := testenv.Disks(t, testenv.WebVM)
	bin := vm2imageBinary(t)
	for _, f := range []string{"raw", "qcow2", "vmdk", "vmdk-stream", "vhdx", "vhd", "ova"} {
		t.Run(f, func(t *testing.T) {
			diffDiskAgainstRef(t, bin, set.Ref, set.Files[f], "--trust-disk")
		})
	}
}

// TestDiskAppliance: the default reader, libguestfs's appliance (the host kernel parses
// nothing), reads the qcow2 and finds it equal to the directory. One appliance launch: it
// takes minutes under TCG, so the format matrix runs on the trusted path above.
func TestDiskAppliance(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "guestfish")
	set := testenv.Disks(t, testenv.WebVM)
	diffDiskAgainstRef(t, vm2imageBinary(t), set.Ref, set.Files["qcow2"])
}

// TestDiskConvertVerify converts each disk format (trusted path) into an image with its packages
// reinstalled; verify finds every image equal to the same root served as dir:, and the services
// came from the disk's systemd units. The packages layer is built once (the first format) and
// found in the cache for the others.
func TestDiskConvertVerify(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
	base := testenv.EngineBase(t)
	set := testenv.Disks(t, testenv.WebVM)
	bin := vm2imageBinary(t)
	for _, f := range []string{"ova", "raw", "qcow2", "vmdk", "vmdk-stream", "vhdx", "vhd"} {
		t.Run(f, func(t *testing.T) {
			out := t.TempDir()
			img, report := filepath.Join(out, "img.tar"), filepath.Join(out, "report.json")
			env := append([]string{"VM2IMAGE_INIT=" + testenv.InitBinary(t)}, applianceEnv...)
			r := runBin(t, env, bin, "convert", "disk:"+set.Files[f], "--trust-disk", "-o", img, "--no-context",
				"--base", "docker-daemon:"+base, "--report", report, "--work-dir", t.TempDir())
			if r.err != nil {
				t.Fatalf("convert: %v\n%s", r.err, r.stderr)
			}
			b, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Services []string `json:"services"`
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(rep.Services, " "), "nginx") {
				t.Errorf("services from the disk's units: %v, want nginx among them", rep.Services)
			}
			v := runBin(t, nil, bin, append([]string{"verify", "docker-archive:" + img, "dir:" + set.Ref, "--work-dir", t.TempDir()}, diskExcludes...)...)
			if v.err != nil {
				t.Errorf("verify image vs dir: %v\n%s%s", v.err, v.stdout, v.stderr)
			}
		})
	}
}

// TestDiskXFSAndBtrfsTrusted: an XFS and a Btrfs root on the whole disk (no partition table),
// read by the trusted path, equal the directory they were made from.
func TestDiskXFSAndBtrfsTrusted(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "unshare", "nsenter", "mount", "blkid", "losetup")
	root, disks := testenv.FSDisks(t, testenv.WebVM)
	bin := vm2imageBinary(t)
	for _, f := range []string{"xfs", "btrfs"} {
		t.Run(f, func(t *testing.T) { diffDiskAgainstRef(t, bin, root, disks[f], "--trust-disk") })
	}
}
