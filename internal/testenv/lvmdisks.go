package testenv

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/fixture"
)

// LVMDisk is one VM root on LVM: a raw disk with a GPT whose only partition is an LVM
// physical volume holding the volume group VG with two logical volumes, root (ext4, the root
// with an empty /var) and var (ext4, /var's content). The root's /etc/fstab mounts the root
// as /dev/mapper/VG-root and /var as /dev/VG/var. Ref is the same tree as a directory.
type LVMDisk struct {
	Ref, Raw, VG string
}

const lvmRecipe = "lvm-disk-v1"

// lvmConfig keeps the lvm2 tools away from the host's LVM state: no device-mapper at all
// (metadata only: nothing is activated), no udev, no devices file, hints, backup or archive;
// every command also gets --devices naming our loop device alone.
const lvmConfig = "global{activation=0} activation{udev_sync=0 udev_rules=0} " +
	"devices{obtain_device_list_from_udev=0 use_devicesfile=0 hints=\"none\"} backup{backup=0 archive=0}"

// LVMDisks returns the cached LVMDisk of the recipe's root, building it on first use under a
// lock. The lvm2 tools write only metadata here (global/activation=0: this machine's kernel
// has no device-mapper, and the host's VGs are never touched); the filesystems are written
// by mkfs.ext4 -d at the offsets of the logical volumes' extents, read back from lvs.
func LVMDisks(t testing.TB, r Recipe) LVMDisk {
	t.Helper()
	return lvmDisks(t, r, "")
}

// HostileLVMDisk is LVMDisks's layout with its fstab naming /var's volume by a path trick,
// /dev/VG/../../../etc/passwd (the LV's own name cannot be one: LVM refuses such names in
// metadata it reads). A reader must leave the entry out; /var stays the root's empty directory.
func HostileLVMDisk(t testing.TB, r Recipe) LVMDisk {
	t.Helper()
	return lvmDisks(t, r, "/../../../etc/passwd")
}

// lvmDisks builds (once) the LVM disk whose fstab names /var as /dev/VG/var, or as /dev/VG
// followed by varSpec when varSpec is given.
func lvmDisks(t testing.TB, r Recipe, varSpec string) LVMDisk {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "mkfs.ext4", "sfdisk", "losetup", "lvm")
	root := Root(t, r)
	id, _ := os.ReadFile(filepath.Join(CacheDir(), r.Key()+".id"))
	recipe := lvmRecipe
	if varSpec != "" {
		recipe += " var=" + varSpec
	}
	sum := sha256.Sum256([]byte(recipe + "\n" + string(id)))
	key := "lvmdisk-" + r.Key() + "-" + hex.EncodeToString(sum[:6])
	dir := filepath.Join(CacheDir(), key)
	d := LVMDisk{Ref: filepath.Join(dir, "ref"), Raw: filepath.Join(dir, "disk.raw")}
	if _, err := fixture.CachedDir(key, t.Logf, func(tmp string) error {
		// A unique VG name: were it ever seen by a host's LVM, it clashes with nothing.
		var nonce [4]byte
		rand.Read(nonce[:])
		td := LVMDisk{Ref: filepath.Join(tmp, "ref"), Raw: filepath.Join(tmp, "disk.raw"), VG: "vm2imgtest" + hex.EncodeToString(nonce[:])}
		if err := buildLVMDisk(root, tmp, td, varSpec); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "vg"), []byte(td.VG), 0o600)
	}); err != nil {
		t.Fatalf("building the LVM disk: %v", err)
	}
	vg, err := os.ReadFile(filepath.Join(dir, "vg"))
	if err != nil {
		t.Fatal(err)
	}
	d.VG = string(vg)
	return d
}

func buildLVMDisk(root, dir string, d LVMDisk, varSpec string) error {
	if err := run("cp", "-a", root, d.Ref); err != nil {
		return err
	}
	if varSpec == "" {
		varSpec = "/var"
	}
	fstab := "# written by the vm2image LVM disk fixture\n/dev/mapper/" + d.VG + "-root / ext4 errors=remount-ro 0 1\n" +
		"/dev/" + d.VG + varSpec + " /var ext4 defaults 0 2\nproc /proc proc defaults 0 0\n"
	if err := os.WriteFile(filepath.Join(d.Ref, "etc/fstab"), []byte(fstab), 0o644); err != nil {
		return err
	}
	st, err := os.Stat(d.Ref)
	if err != nil {
		return err
	}
	varDir := filepath.Join(dir, "var")
	if err := os.Rename(filepath.Join(d.Ref, "var"), varDir); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(d.Ref, "var"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(d.Raw, nil, 0o600); err != nil {
		return err
	}
	const size, partStart = 1200 << 20, 1 << 20
	if err := os.Truncate(d.Raw, size); err != nil {
		return err
	}
	sf := exec.Command("sfdisk", "-q", d.Raw)
	sf.Stdin = strings.NewReader("label: gpt\nstart=2048, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n")
	if out, err := sf.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %v: %s", err, out)
	}
	lvs, err := makeVG(d.Raw, partStart, size-partStart-34*512, d.VG)
	if err != nil {
		return err
	}
	for _, lv := range []struct{ name, src string }{{"root", d.Ref}, {"var", varDir}} {
		e := lvs[lv.name]
		if err := run("mkfs.ext4", "-q", "-F", "-E", "offset="+strconv.FormatInt(partStart+e[0], 10), "-d", lv.src,
			d.Raw, strconv.FormatInt(e[1]>>10, 10)+"k"); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(d.Ref, "var")); err != nil {
		return err
	}
	if err := os.Rename(varDir, filepath.Join(d.Ref, "var")); err != nil {
		return err
	}
	return os.Chtimes(d.Ref, st.ModTime(), st.ModTime())
}

// makeVG attaches the partition as a loop device, makes it a PV with a VG of two LVs (root
// 800 MiB, var the rest), and returns each LV's byte offset in the partition and size. The
// loop device is detached on every return.
func makeVG(raw string, off, size int64, vg string) (map[string][2]int64, error) {
	out, err := exec.Command("losetup", "-f", "--show", "-o", strconv.FormatInt(off, 10), "--sizelimit", strconv.FormatInt(size, 10), raw).Output()
	if err != nil {
		return nil, fmt.Errorf("losetup: %w", err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	lvm := func(args ...string) (string, error) {
		cmd := exec.Command("lvm", append([]string{args[0], "--devices", loop, "--config", lvmConfig}, args[1:]...)...)
		cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
		b, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			return "", fmt.Errorf("lvm %s: %v: %s", strings.Join(args, " "), err, stderr)
		}
		return string(b), nil
	}
	for _, c := range [][]string{
		{"pvcreate", "-q", loop},
		{"vgcreate", "-q", vg, loop},
		{"lvcreate", "-q", "-an", "-Zn", "-L", "800M", "-n", "root", vg},
		{"lvcreate", "-q", "-an", "-Zn", "-l", "100%FREE", "-n", "var", vg},
	} {
		if _, err := lvm(c...); err != nil {
			return nil, err
		}
	}
	pv, err := lvm("pvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start", loop)
	if err != nil {
		return nil, err
	}
	peStart, err := strconv.ParseInt(strings.TrimSpace(pv), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("reading pe_start %q: %w", pv, err)
	}
	rows, err := lvm("lvs", "--noheadings", "--units", "b", "--nosuffix", "--separator", ",",
		"-o", "lv_name,seg_pe_ranges,vg_extent_size,seg_size", vg)
	if err != nil {
		return nil, err
	}
	lvs := map[string][2]int64{}
	for _, l := range strings.Split(strings.TrimSpace(rows), "\n") {
		f := strings.Split(strings.TrimSpace(l), ",")
		if len(f) != 4 {
			return nil, fmt.Errorf("reading lvs: %q", l)
		}
		_, rng, _ := strings.Cut(f[1], ":")
		first, _, _ := strings.Cut(rng, "-")
		pe, err1 := strconv.ParseInt(first, 10, 64)
		ext, err2 := strconv.ParseInt(f[2], 10, 64)
		sz, err3 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("reading lvs (one segment per LV expected): %q", l)
		}
		lvs[f[0]] = [2]int64{peStart + pe*ext, sz}
	}
	if len(lvs) != 2 {
		return nil, fmt.Errorf("lvs listed %d volumes, want root and var", len(lvs))
	}
	return lvs, nil
}
