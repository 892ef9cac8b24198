package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"golang.org/x/sys/unix"
)

// assertNothingAttached checks that no loop device, mount or process refers to image or to a
// disk: work directory once the run is over. Loop devices detach when their namespace's last
// mount goes, which the kernel finishes after the holder exits: wait for that, boundedly.
func assertNothingAttached(t *testing.T, image string) {
	t.Helper()
	var left string
	for deadline := time.Now().Add(20 * time.Second); ; {
		left = attachedTo(image)
		if left == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if left != "" {
		t.Errorf("still attached after the run: %s", left)
	}
}

func attachedTo(image string) string {
	if out, _ := exec.Command("losetup", "-a").Output(); bytes.Contains(out, []byte(image)) || bytes.Contains(out, []byte("vm2image-disk-")) {
		return "loop devices: " + string(out)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte("vm2image-disk-")) {
		return "mounts under a disk: work directory"
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		if b, _ := os.ReadFile(c); bytes.Contains(b, []byte(image)) && !bytes.Contains(b, []byte("vm2image.test")) {
			return "process " + c + ": " + string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	return ""
}

// children lists the processes whose parent is pid and whose command name is comm.
func children(pid int, comm string) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, _ := os.ReadFile(st)
		i := bytes.LastIndexByte(b, ')')
		j := bytes.IndexByte(b, '(')
		if i < 0 || j < 0 {
			continue
		}
		var state byte
		var ppid, self int
		fmt.Sscanf(string(b[:j]), "%d", &self)
		if _, err := fmt.Sscanf(string(b[i+2:]), "%c %d", &state, &ppid); err == nil && ppid == pid && strings.HasPrefix(string(b[j+1:i]), comm) {
			out = append(out, self)
		}
	}
	return out
}

// applianceOf returns the qemu processes of the guestfish that pid started.
func applianceOf(pid int) []int {
	var qemus []int
	for _, g := range children(pid, "guestfish") {
		qemus = append(qemus, children(g, "qemu-system")...)
	}
	return qemus
}

// watchOpens reports, when called back, whether anything opened or read path meanwhile
// (inotify IN_OPEN|IN_ACCESS).
func watchOpens(t *testing.T, path string) func() bool {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN|unix.IN_ACCESS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return func() bool {
		buf := make([]byte, 4096)
		n, _ := unix.Read(fd, buf)
		return n > 0
	}
}

// hostile builds the attacker's images in dir; marker is a host file they try to reach.
func hostileImages(t *testing.T, dir, marker string) map[string]string {
	t.Helper()
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	imgs := map[string]string{}
	// A qcow2 with data, cut in half.
	raw := filepath.Join(dir, "data.raw")
	data := make([]byte, 4<<20)
	rand.Read(data)
	mustWrite(t, raw, string(data))
	imgs["truncated-qcow2"] = filepath.Join(dir, "truncated.qcow2")
	run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, imgs["truncated-qcow2"])
	st, _ := os.Stat(imgs["truncated-qcow2"])
	if err := os.Truncate(imgs["truncated-qcow2"], st.Size()/2); err != nil {
		t.Fatal(err)
	}
	// A qcow2 whose backing file is the host's marker.
	imgs["backing-qcow2"] = filepath.Join(dir, "backing.qcow2")
	run("qemu-img", "create", "-f", "qcow2", "-u", "-b", marker, "-F", "raw", imgs["backing-qcow2"], "64M")
	// A VMDK descriptor whose flat extent is the marker (and one naming /etc/shadow).
	imgs["vmdk-descriptor"] = filepath.Join(dir, "flat.vmdk")
	mustWrite(t, imgs["vmdk-descriptor"], fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \"%s\" 0\n", marker))
	imgs["vmdk-shadow"] = filepath.Join(dir, "shadow.vmdk")
	mustWrite(t, imgs["vmdk-shadow"], "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \"/etc/shadow\" 0\n")
	// A monolithic sparse VMDK whose embedded descriptor was rewritten to a flat extent.
	imgs["vmdk-embedded"] = filepath.Join(dir, "embedded.vmdk")
	run("qemu-img", "create", "-f", "vmdk", "-o", "subformat=monolithicSparse", imgs["vmdk-embedded"], "64M")
	b, err := os.ReadFile(imgs["vmdk-embedded"])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("RW "))
	j := i + bytes.IndexByte(b[i:], '\n')
	evil := fmt.Sprintf("RW 131072 FLAT \"%s\" 0", marker)
	copy(b[i:], append([]byte(evil), bytes.Repeat([]byte{'\n'}, max(0, j-i-len(evil)))...))
	mustWrite(t, imgs["vmdk-embedded"], string(b))
	// A raw disk whose MBR's partition lies past its end.
	garbage := make([]byte, 1<<20)
	garbage[510], garbage[511] = 0x55, 0xaa
	copy(garbage[446:], []byte{0x80, 0, 0, 0, 0x83, 0, 0, 0, 0, 8, 0, 0, 0xff, 0xff, 0xff, 0x7f})
	imgs["garbage-mbr"] = filepath.Join(dir, "garbage.raw")
	mustWrite(t, imgs["garbage-mbr"], string(garbage))
	return imgs
}

// TestAttackDiskImages: hostile images get a clear error naming the problem, before any tool
// opens them; the marker file they point at is never opened, no image is written to, nothing
// is left attached; the same with the appliance and with --trust-disk.
func TestAttackDiskImages(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "qemu-img", "losetup")
	bin := vm2imageBinary(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	mustWrite(t, marker, strings.Repeat(newMarker(t), 1<<16))
	imgs := hostileImages(t, dir, marker)
	opened := watchOpens(t, marker)
	want := map[string]string{
		"truncated-qcow2": "image is truncated or corrupt",
		"backing-qcow2":   "backing file",
		"vmdk-descriptor": "VMDK descriptor file names its extents",
		"vmdk-shadow":     "VMDK descriptor file names its extents",
		"vmdk-embedded":   "not the image's own sparse extent",
		"garbage-mbr":     "bad partition table: partition 1",
	}
	for name, img := range imgs {
		for _, mode := range [][]string{nil, {"--trust-disk"}} {
			sum := testenv.FileSHA256(t, img)
			r := runBin(t, applianceEnv, bin, append([]string{"inspect", "disk:" + img, "--work-dir", t.TempDir()}, mode...)...)
			if r.err == nil || !strings.Contains(r.stderr, want[name]) {
				t.Errorf("%s %v: want an error saying %q, got %v\n%s", name, mode, want[name], r.err, r.stderr)
			}
			if testenv.FileSHA256(t, img) != sum {
				t.Errorf("%s: the image was written to", name)
			}
			assertNothingAttached(t, img)
		}
	}
	if opened() {
		t.Errorf("the host file %s named by a hostile image was opened", marker)
	}
}

// TestAttackDiskKilledMidRead kills vm2image (SIGKILL: no cleanup code runs) while it reads a
// disk, on the trusted path once its loop devices are attached and with the appliance once
// qemu runs: afterwards no mount, loop device or qemu process is left.
func TestAttackDiskKilledMidRead(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "unshare", "nsenter", "losetup", "guestfish")
	set := testenv.Disks(t, testenv.WebVM)
	bin := vm2imageBinary(t)
	var qemus []int // the appliance's, once seen
	for _, c := range []struct {
		mode    []string
		started func(pid int) bool
	}{
		{[]string{"--trust-disk"}, func(int) bool {
			out, _ := exec.Command("losetup", "-a").Output()
			return bytes.Contains(out, []byte(set.Files["raw"]))
		}},
		{nil, func(pid int) bool { qemus = applianceOf(pid); return len(qemus) > 0 }},
	} {
		cmd := exec.Command(bin, append([]string{"export", "disk:" + set.Files["raw"], "-o", filepath.Join(t.TempDir(), "x.tar"), "--work-dir", t.TempDir()}, c.mode...)...)
		cmd.Env = append(os.Environ(), applianceEnv...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for !c.started(cmd.Process.Pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !c.started(cmd.Process.Pid) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%v: the read never started", c.mode)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		assertNothingAttached(t, set.Files["raw"])
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			alive := 0
			for _, q := range qemus {
				if syscall.Kill(q, 0) == nil {
					alive++
				}
			}
			if alive == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%v: the appliance's qemu (pids %v) outlived the killed vm2image", c.mode, qemus)
				break
			}
		}
	}
}

// problemDisk is a raw GPT disk with a LUKS volume, a partition of random bytes and an empty
// ext4 filesystem: no system to read.
func problemDisk(t *testing.T, dir string) string {
	t.Helper()
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	img := filepath.Join(dir, "problems.raw")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 130<<20); err != nil {
		t.Fatal(err)
	}
	sf := exec.Command("sfdisk", "-q", img)
	sf.Stdin = strings.NewReader("label: gpt\nstart=2048, size=40MiB\nsize=40MiB\nsize=40MiB\n")
	if out, err := sf.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	luks, key := filepath.Join(dir, "luks"), filepath.Join(dir, "key")
	mustWrite(t, key, "not a secret")
	if err := os.Truncate(img, 130<<20); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, luks, "")
	os.Truncate(luks, 40<<20)
	run("cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", key, luks)
	run("dd", "if="+luks, "of="+img, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none")
	noise := make([]byte, 40<<20)
	rand.Read(noise)
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(noise, 41<<20)
	f.Close()
	run("mkfs.ext4", "-q", "-F", "-E", fmt.Sprintf("offset=%d", 81<<20), img, "40M")
	return img
}

// TestAttackDiskNoSystem: a disk with an encrypted volume, an unknown filesystem and an
// empty one gets an error naming each problem, on the trusted path and with the appliance
// (one launch); nothing is left attached, the image is unchanged.
func TestAttackDiskNoSystem(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "cryptsetup", "sfdisk", "mkfs.ext4", "guestfish", "unshare", "nsenter")
	bin := vm2imageBinary(t)
	img := problemDisk(t, t.TempDir())
	sum := testenv.FileSHA256(t, img)
	for _, mode := range [][]string{{"--trust-disk"}, nil} {
		r := runBin(t, applianceEnv, bin, append([]string{"inspect", "disk:" + img, "--work-dir", t.TempDir()}, mode...)...)
		for _, want := range []string{"no operating system found", "encrypted (LUKS)", "unknown filesystem", "ext4 without /etc/os-release"} {
			if r.err == nil || !strings.Contains(r.stderr, want) {
				t.Errorf("%v: want an error saying %q, got %v\n%s", mode, want, r.err, r.stderr)
			}
		}
		assertNothingAttached(t, img)
	}
	if testenv.FileSHA256(t, img) != sum {
		t.Errorf("the image was written to")
	}
}
