package disk

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// trustedTypes are the filesystems the trusted path mounts, with the options that keep a
// read-only mount from replaying a journal.
var trustedTypes = map[string]string{"ext2": "", "ext3": ",noload", "ext4": ",noload", "xfs": ",norecovery", "btrfs": ""}

// volume is one filesystem on the raw disk: a partition, or the whole disk.
type volume struct {
	Partition
	fsType, uuid, label string
	dir                 string // mount point under the work directory, "" when not mounted
}

func (v volume) name() string {
	if v.Number == 0 {
		return "whole disk"
	}
	return "partition " + strconv.Itoa(v.Number)
}

// Mounted is a disk's root mounted by the trusted path.
type Mounted struct {
	root   string // the root's mount point inside the namespace
	holder *exec.Cmd
	in     io.WriteCloser
}

// Trusted mounts the root filesystem of img, and what its /etc/fstab mounts, for images the
// operator trusts: the HOST kernel parses them. A non-raw image is first made raw with
// qemu-img convert in opts.WorkDir. Each filesystem is mounted ro,noexec,nodev,nosuid from a
// read-only loop device with an offset (autoclear) inside a private mount namespace held by
// a child process: when that child ends (Close, or this process killed: the child has a
// parent-death signal) the kernel unmounts everything and detaches the loops.
func Trusted(ctx context.Context, img Image, opts Options) (*Mounted, error) {
	opts.defaults()
	raw, err := rawImage(ctx, img, opts)
	if err != nil {
		return nil, err
	}
	vols, err := volumes(ctx, raw, opts)
	if err != nil {
		return nil, err
	}
	if err := refuseLVM(vols); err != nil {
		return nil, err
	}
	m, err := startHolder(opts)
	if err != nil {
		return nil, err
	}
	if err := m.mountRoot(ctx, raw, vols, opts); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// rawImage returns a raw image of img: img itself, or a qemu-img copy in the work directory.
func rawImage(ctx context.Context, img Image, opts Options) (string, error) {
	if img.Format == Raw {
		return img.Path, nil
	}
	out := filepath.Join(opts.WorkDir, "disk.raw")
	opts.Logf("disk: converting %s (%s) to raw in the work directory", img.Path, img.Format)
	cmd := exec.CommandContext(ctx, "qemu-img", "convert", "-f", string(img.Format), "-O", "raw", img.Path, out)
	cmd.Env = opts.Env
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("converting the %s image to raw: %w: %s", img.Format, err, bytes.TrimSpace(b))
	}
	return out, nil
}

// volumes reads the partition table and asks blkid what each partition holds.
func volumes(ctx context.Context, raw string, opts Options) ([]volume, error) {
	f, err := os.Open(raw)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	parts, err := Partitions(f, st.Size())
	if err != nil {
		return nil, err
	}
	if parts == nil {
		parts = []Partition{{Number: 0, Start: 0, Size: st.Size()}}
	}
	vols := make([]volume, len(parts))
	for i, p := range parts {
		vols[i] = volume{Partition: p}
		cmd := exec.CommandContext(ctx, "blkid", "-p", "-o", "export", "-O", strconv.FormatInt(p.Start, 10), "-S", strconv.FormatInt(p.Size, 10), raw)
		cmd.Env = opts.Env
		out, _ := cmd.Output() // exit 2: nothing recognised
		for _, l := range strings.Split(string(out), "\n") {
			k, v, _ := strings.Cut(l, "=")
			switch k {
			case "TYPE":
				vols[i].fsType = v
			case "UUID":
				vols[i].uuid = v
			case "LABEL":
				vols[i].label = v
			}
		}
		if vols[i].fsType == "" {
			vols[i].fsType = "unknown"
		}
	}
	return vols, nil
}

// refuseLVM stops the trusted path, before anything is attached, at a disk holding an LVM
// physical volume: its logical volumes would be activated in the host's device-mapper, which
// no mount namespace isolates, under names the guest chose (a volume group named like one of
// the host's, or its LVs, would be confused with the host's own).
func refuseLVM(vols []volume) error {
	for _, v := range vols {
		if v.fsType == "LVM2_member" {
			return fmt.Errorf("%w: %s is an LVM physical volume: --trust-disk does not activate a guest's LVM in the host's device-mapper; read this disk without --trust-disk (libguestfs's appliance activates LVM in its own kernel)", ErrUnsupported, v.name())
		}
	}
	return nil
}

// startHolder starts the child that holds the private mount namespace.
func startHolder(opts Options) (*Mounted, error) {
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "cat")
	cmd.Env = opts.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the mount namespace holder (unshare): %w", err)
	}
	m := &Mounted{holder: cmd, in: in}
	// cat echoes the line once unshare has made the namespace and exec'd it.
	if _, err := io.WriteString(in, "ready\n"); err == nil {
		_, err = bufio.NewReader(out).ReadString('\n')
	}
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("starting the mount namespace holder (unshare): %w", err)
	}
	return m, nil
}

// Close ends the namespace: its mounts go, their loop devices detach (autoclear).
func (m *Mounted) Close() error {
	m.in.Close()
	m.holder.Process.Kill()
	m.holder.Wait()
	return nil
}

// mount mounts v (or the fstab entry's volume) read-only at target, inside the namespace.
func (m *Mounted) mount(ctx context.Context, raw string, v volume, target string, opts Options) error {
	o := "ro,noexec,nodev,nosuid,loop,offset=" + strconv.FormatInt(v.Start, 10) + ",sizelimit=" + strconv.FormatInt(v.Size, 10) + trustedTypes[v.fsType]
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(m.holder.Process.Pid), "-m", "--", "mount", "-t", v.fsType, "-o", o, raw, target)
	cmd.Env = opts.Env
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mounting %s (%s): %w: %s", v.name(), v.fsType, err, bytes.TrimSpace(b))
	}
	return nil
}

// WriteTar streams the mounted tree (root and fstab mounts) as a tar with numeric owners and
// xattrs, written by GNU tar inside the namespace.
func (m *Mounted) WriteTar(ctx context.Context, w io.Writer, opts Options) error {
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(m.holder.Process.Pid), "-m", "--",
		"tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sparse", "-C", m.root, "-cf", "-", ".")
	cmd.Env = opts.Env
	cmd.Stdout = w
	var stderr syncBuffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("reading the mounted filesystems: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// inNS is path as this process reaches it inside the holder's namespace.
func (m *Mounted) inNS(path string) string {
	return fmt.Sprintf("/proc/%d/root%s", m.holder.Process.Pid, path)
}

// readBounded reads at most max bytes of a file.
func readBounded(r io.Reader, max int64) ([]byte, error) {
	return io.ReadAll(bufio.NewReader(io.LimitReader(r, max)))
}
