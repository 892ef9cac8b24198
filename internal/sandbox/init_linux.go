package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Main sets up the sandbox and executes its command when the binary was re-executed for that
// (Run); it never returns then. Otherwise it returns at once: call it first thing in main, and
// in TestMain of tests that run sandboxes.
func Main() {
	if len(os.Args) == 0 || os.Args[0] != initArg {
		return
	}
	// Capabilities and no_new_privs belong to a thread: set them on the one that execs.
	runtime.LockOSThread()
	err := initSandbox()
	errPipe := os.NewFile(4, "setup errors")
	fmt.Fprintf(errPipe, "%v", err) // after a ready byte: the exec failed
	os.Exit(125)
}

// initSandbox runs in the new namespaces: it reads the spec, pivots into the root, mounts
// /proc and /sys, drops privileges and execs the command. It returns only on failure.
func initSandbox() error {
	unix.CloseOnExec(4)
	cfg := os.NewFile(3, "spec")
	var spec Spec
	err := json.NewDecoder(cfg).Decode(&spec)
	cfg.Close()
	if err != nil {
		return fmt.Errorf("reading the spec: %w", err)
	}
	if err := pivot(spec.Root); err != nil {
		return err
	}
	if err := mountPseudo(); err != nil {
		return err
	}
	for _, p := range spec.ReadOnly {
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
		if err := unix.Mount(p, p, "", flags, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", p, err)
		}
	}
	host := spec.Hostname
	if host == "" {
		host = "vm2image-build"
	}
	if err := unix.Sethostname([]byte(host)); err != nil {
		return fmt.Errorf("setting the host name: %w", err)
	}
	if !spec.Network {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("entering %s: %w", dir, err)
	}
	if err := dropPrivileges(); err != nil {
		return err
	}
	// The byte that tells Run the sandbox is set up; the pipe closes at the exec.
	if _, err := os.NewFile(4, "setup errors").Write([]byte{ready}); err != nil {
		return fmt.Errorf("reporting the sandbox ready: %w", err)
	}
	err = syscall.Exec(spec.Path, spec.Argv, spec.Env)
	return fmt.Errorf("executing %s: %w", spec.Path, err)
}

// pivot makes every mount private (nothing propagates back to the host), pivots into root
// and detaches the old root, so that no host mount stays reachable.
func pivot(root string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the root %s: %w", root, err)
	}
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering the root %s: %w", root, err)
	}
	// pivot_root(".", ".") stacks the old root on the new one; unmounting "." detaches it.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivoting into %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host's root: %w", err)
	}
	return unix.Chdir("/")
}

// mountPseudo mounts a /proc of the sandbox's own pid namespace, with the kernel knobs
// read-only and the host-wide files masked as container engines do, and a read-only /sys.
// Mount points resolve inside the new root: a symlink there cannot lead out.
func mountPseudo() error {
	const nosuid = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("proc", "/proc", "proc", nosuid, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"} {
		if err := readOnly(p); err != nil {
			return err
		}
	}
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/kmsg"} {
		if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("masking %s: %w", p, err)
		}
	}
	for _, p := range []string{"/proc/acpi", "/proc/scsi"} {
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|nosuid, "size=0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("masking %s: %w", p, err)
		}
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_RDONLY|nosuid, ""); err != nil {
		return fmt.Errorf("mounting /sys: %w", err)
	}
	return nil
}

// readOnly binds p onto itself read-only; a path the kernel lacks is skipped.
func readOnly(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("binding %s: %w", p, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount(p, p, "", flags, ""); err != nil {
		return fmt.Errorf("making %s read-only: %w", p, err)
	}
	return nil
}

// loopbackUp brings up lo, the only interface of a fresh network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	return nil
}
