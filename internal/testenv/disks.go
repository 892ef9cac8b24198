package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/fixture"
)

// DiskSet is one VM root written as disk images of every format a disk: source reads, and the
// same tree as a directory (Ref) to compare them with. The raw disk has a GPT with the root
// (ext4, LABEL=vmroot) on partition 1, /var (ext4, by UUID in the root's /etc/fstab) on
// partition 2 and a swap-typed partition 3 (no filesystem); the root's /var is an empty
// mount point, so a reader that ignores the fstab loses the package database.
type DiskSet struct {
	Ref   string            // the tree, as dir: serves it
	Files map[string]string // format name (raw, qcow2, vmdk, vmdk-stream, vhdx, vhd, ova) -> image
}

// diskRecipe versions the layout below: change it when the layout changes.
const diskRecipe = "disk-v1"

const varUUID = "3f0d7a5e-2b7c-4c55-9d1e-6a2f4b8c9e01"

// Disks returns the cached DiskSet of the recipe's root, building it on first use under a lock.
func Disks(t testing.TB, r Recipe) DiskSet {
	t.Helper()
	RequireCommands(t, "mkfs.ext4", "sfdisk", "qemu-img", "tar")
	root := Root(t, r)
	id, _ := os.ReadFile(filepath.Join(CacheDir(), r.Key()+".id"))
	sum := sha256.Sum256([]byte(diskRecipe + "\n" + string(id)))
	key := "disks-" + r.Key() + "-" + hex.EncodeToString(sum[:6])
	dir := filepath.Join(CacheDir(), key)
	set := DiskSet{Ref: filepath.Join(dir, "ref"), Files: map[string]string{}}
	for _, f := range []string{"raw", "qcow2", "vmdk", "vmdk-stream", "vhdx", "vhd", "ova"} {
		set.Files[f] = filepath.Join(dir, "disk."+f)
	}
	if _, err := fixture.CachedDir(key, t.Logf, func(tmp string) error {
		// Built in tmp with tmp's names, then renamed into place as dir.
		tset := DiskSet{Ref: filepath.Join(tmp, "ref"), Files: map[string]string{}}
		for f := range set.Files {
			tset.Files[f] = filepath.Join(tmp, "disk."+f)
		}
		return buildDisks(root, tmp, tset)
	}); err != nil {
		t.Fatalf("building the disk images: %v", err)
	}
	return set
}

func buildDisks(root, dir string, set DiskSet) error {
	ref := set.Ref
	if err := run("cp", "-a", root, ref); err != nil {
		return err
	}
	fstab := "# written by the vm2image disk fixture\nLABEL=vmroot / ext4 errors=remount-ro 0 1\nUUID=" + varUUID +
		" /var ext4 defaults 0 2\n/dev/sda3 none swap sw 0 0\nproc /proc proc defaults 0 0\n"
	if err := os.WriteFile(filepath.Join(ref, "etc/fstab"), []byte(fstab), 0o644); err != nil {
		return err
	}
	// The root filesystem gets an empty /var: its content goes to partition 2.
	varDir := filepath.Join(dir, "var")
	if err := os.Rename(filepath.Join(ref, "var"), varDir); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(ref, "var"), 0o755); err != nil {
		return err
	}
	raw := set.Files["raw"]
	if err := os.Truncate(raw, 1200<<20); err != nil {
		if f, cerr := os.Create(raw); cerr == nil {
			f.Close()
			err = os.Truncate(raw, 1200<<20)
		}
		if err != nil {
			return err
		}
	}
	sf := exec.Command("sfdisk", "-q", raw)
	sf.Stdin = strings.NewReader("label: gpt\nstart=2048, size=700MiB\nsize=300MiB\nsize=100MiB, type=swap\n")
	if out, err := sf.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %v: %s", err, out)
	}
	p2 := int64(2048+700*2048) * 512
	if err := run("mkfs.ext4", "-q", "-F", "-L", "vmroot", "-E", "offset=1048576", "-d", ref, raw, "700M"); err != nil {
		return err
	}
	if err := run("mkfs.ext4", "-q", "-F", "-U", varUUID, "-E", fmt.Sprintf("offset=%d", p2), "-d", varDir, raw, "300M"); err != nil {
		return err
	}
	// The reference holds /var's content again, as the mounted VM shows it.
	st, err := os.Stat(ref)
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(ref, "var")); err != nil {
		return err
	}
	if err := os.Rename(varDir, filepath.Join(ref, "var")); err != nil {
		return err
	}
	if err := os.Chtimes(ref, st.ModTime(), st.ModTime()); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"qcow2", "-O", "qcow2"},
		{"vmdk", "-O", "vmdk", "-o", "subformat=monolithicSparse"},
		{"vmdk-stream", "-O", "vmdk", "-o", "subformat=streamOptimized"},
		{"vhdx", "-O", "vhdx"},
		{"vhd", "-O", "vpc"},
	} {
		args := append([]string{"convert", "-f", "raw"}, c[1:]...)
		if err := run("qemu-img", append(args, raw, set.Files[c[0]])...); err != nil {
			return err
		}
	}
	return writeOVA(set.Files["ova"], set.Files["vmdk-stream"])
}

// writeOVA writes an OVA: an OVF descriptor naming one disk, then the stream-optimized VMDK.
func writeOVA(ova, vmdk string) error {
	stage, err := os.MkdirTemp(filepath.Dir(ova), "ova-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	ovf := `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="file1" ovf:href="vm-disk1.vmdk"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1258291200" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info>a VM</Info></VirtualSystem>
</Envelope>
`
	if err := os.WriteFile(filepath.Join(stage, "vm.ovf"), []byte(ovf), 0o644); err != nil {
		return err
	}
	if err := os.Link(vmdk, filepath.Join(stage, "vm-disk1.vmdk")); err != nil {
		return err
	}
	return run("tar", "--format=ustar", "--hard-dereference", "-C", stage, "-cf", ova, "vm.ovf", "vm-disk1.vmdk")
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// FileSHA256 is the hex sha256 of a file's content.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
