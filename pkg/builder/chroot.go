package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vm2image/vm2image/internal/sandbox"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// chroot runs the plan in an overlay whose lower layer is the base root, so the base is never
// written and the upper directory holds only what the build changed. Every command runs in a
// sandbox (internal/sandbox): its own mount, pid, ipc, uts and, but to fetch packages, network
// namespaces, pivoted into the overlay, with reduced capabilities. Only the benchmark's
// baseline (unsandboxed) runs commands in a plain chroot(2) with the host's /proc, as before.
type chroot struct {
	root     string   // the overlay's merged directory
	upper    string   // the overlay's upper directory: what the build changed
	plain    bool     // chroot(2) without the sandbox: the benchmark's baseline only
	network  bool     // the next commands may use the host's network
	mounts   []string // mounted directories, in mount order; the overlay is mounts[0]
	made     []string // mount points this build created in the root, removed before diffing
	archives string   // host directory bound at /var/cache/apt/archives, or ""
	logf     func(string, ...any)
}

var _ backend = (*chroot)(nil)

// newChroot mounts the overlay under workDir and the pseudo filesystems a package manager needs.
// On error everything mounted so far is unmounted.
func newChroot(base, workDir, archives string, plain bool, logf func(string, ...any)) (*chroot, error) {
	if strings.ContainsAny(base, ",:\\") || strings.ContainsAny(workDir, ",:\\") {
		return nil, fmt.Errorf("mounting the build overlay: the paths %q and %q must not hold ',', ':' or '\\'", base, workDir)
	}
	upper, work := filepath.Join(workDir, "upper"), filepath.Join(workDir, "work")
	c := &chroot{root: filepath.Join(workDir, "root"), upper: upper, archives: archives, plain: plain, logf: logf}
	for _, d := range []string{upper, work, c.root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	opts := "lowerdir=" + base + ",upperdir=" + upper + ",workdir=" + work
	// /proc/PID/root shows the resolved path: killRootProcesses compares with it.
	if real, err := filepath.EvalSymlinks(c.root); err == nil {
		c.root = real
	}
	if err := unix.Mount("overlay", c.root, "overlay", 0, opts); err != nil {
		return nil, fmt.Errorf("mounting the build overlay on %s: %w", base, err)
	}
	c.mounts = append(c.mounts, c.root)
	// Private: nothing mounted inside propagates to the host's mount peers, nor back.
	if err := unix.Mount("", c.root, "", unix.MS_PRIVATE, ""); err != nil {
		c.unmountAll()
		return nil, fmt.Errorf("making the build overlay private: %w", err)
	}
	if err := c.mountPseudo(); err != nil {
		c.unmountAll()
		return nil, err
	}
	return c, nil
}

// mountPseudo mounts a small /dev with its own devpts and the apt archive cache, and makes
// the mount points of /proc and /sys, which each sandbox mounts for itself (the plain chroot
// mounts them here, the host's /proc).
func (c *chroot) mountPseudo() error {
	const nodev = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	for _, m := range []struct {
		dir, fstype string
		flags       uintptr
	}{{"proc", "proc", nodev}, {"sys", "sysfs", nodev | unix.MS_RDONLY}} {
		if !c.plain {
			if _, err := c.mountPoint(m.dir); err != nil {
				return err
			}
		} else if err := c.mount(m.dir, m.fstype, m.fstype, m.flags, ""); err != nil {
			return err
		}
	}
	if err := c.mount("dev", "vm2image-dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=1m"); err != nil {
		return err
	}
	if err := c.populateDev(); err != nil {
		return err
	}
	if err := c.mount("dev/pts", "devpts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620,gid=5"); err != nil {
		return err
	}
	if err := c.mount("dev/shm", "shm", "tmpfs", nodev, "mode=1777"); err != nil {
		return err
	}
	if c.archives != "" {
		if err := c.mount(archivesDir, c.archives, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	return nil
}

// mount mounts on rel inside the root, creating the directory if it is missing, and refusing a
// mount point that is or passes through a symlink (it could point out of the root).
func (c *chroot) mount(rel, source, fstype string, flags uintptr, data string) error {
	target, err := c.mountPoint(rel)
	if err != nil {
		return err
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mounting %s in the build root: %w", rel, err)
	}
	c.mounts = append(c.mounts, target)
	if flags&unix.MS_BIND != 0 {
		_ = unix.Mount("", target, "", unix.MS_PRIVATE, "")
	}
	return nil
}

// mountPoint returns the host path of the directory rel in the root, creating what is missing.
func (c *chroot) mountPoint(rel string) (string, error) {
	p := c.root
	for _, part := range strings.Split(rel, "/") {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return "", fmt.Errorf("creating mount point %s: %w", rel, err)
			}
			c.made = append(c.made, p)
		case err != nil:
			return "", err
		case !fi.IsDir():
			return "", fmt.Errorf("mounting %s in the build root: %s is not a directory", rel, p)
		}
	}
	return p, nil
}

// populateDev makes the device nodes and links of a minimal /dev.
func (c *chroot) populateDev() error {
	dev := filepath.Join(c.root, "dev")
	for _, n := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		p := filepath.Join(dev, n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("creating /dev/%s in the build root: %w", n.name, err)
		}
		_ = os.Chmod(p, 0o666) // the umask took bits away
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return nil
}

// archivesDir is where the apt archive directory is bound in the root.
const archivesDir = "var/cache/apt/archives"

// setNetwork says whether the next commands run in the host's network namespace.
func (c *chroot) setNetwork(_ context.Context, on bool) error { c.network = on; return nil }

// run runs argv in a sandbox pivoted into the root; the sandbox's init is started by
// re-executing this binary, never by a host binary that would load LD_PRELOAD outside the root.
func (c *chroot) run(ctx context.Context, argv, env []string, out io.Writer) error {
	if len(argv) == 0 {
		return errors.New("running an empty command")
	}
	name, err := lookPathIn(c.root, argv[0], env)
	if err != nil {
		return err
	}
	if c.plain {
		return c.runPlain(ctx, name, argv, env, out)
	}
	spec := sandbox.Spec{Root: c.root, Path: name, Argv: argv, Env: env, Network: c.network}
	if c.archives != "" && !c.network {
		// Its .debs are hard links into the shared cache: what runs maintainer scripts must
		// not write them.
		spec.ReadOnly = []string{"/" + archivesDir}
	}
	err = sandbox.Run(ctx, spec, out)
	var se *sandbox.ExitError
	if errors.As(err, &se) && ctx.Err() == nil {
		return &exitError{argv: argv, code: se.Code}
	}
	return err
}

// runPlain runs argv chrooted into the root, in its own process group so that a cancelled
// context kills the whole tree a maintainer script may have started: the old, unsafe way, kept
// as the benchmark's baseline.
func (c *chroot) runPlain(ctx context.Context, name string, argv, env []string, out io.Writer) error {
	cmd := exec.CommandContext(ctx, name)
	cmd.Path, cmd.Args = name, argv // name is the path inside the root: no host lookup
	cmd.Env, cmd.Dir = env, "/"
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: c.root, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return &exitError{argv: argv, code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("running %s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// lookPathIn finds name in the PATH of env inside root and returns its path inside root. Links
// are left to the kernel, which resolves them inside the root after chroot.
func lookPathIn(root, name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Lstat(filepath.Join(root, p)); err == nil && (fi.Mode()&fs.ModeSymlink != 0 || fi.Mode()&0o111 != 0) {
			return p, nil
		}
	}
	return "", fmt.Errorf("running %s: not found in the build root's PATH", name)
}

// fs opens the root for the file operations: os.Root resolves symlinks inside the root and
// refuses paths that would leave it, since the paths come from the VM.
func (c *chroot) fs() (*os.Root, error) {
	r, err := os.OpenRoot(c.root)
	if err != nil {
		return nil, fmt.Errorf("opening the build root: %w", err)
	}
	return r, nil
}

func (c *chroot) writeFile(_ context.Context, p string, data []byte, mode fs.FileMode) error {
	rel, err := cleanRel(p)
	if err != nil {
		return err
	}
	r, err := c.fs()
	if err != nil {
		return err
	}
	defer r.Close()
	if dir := path.Dir(rel); dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("writing %s in the build root: %w", p, err)
		}
	}
	// A symlink in the way is replaced, not followed.
	if fi, err := r.Lstat(rel); err == nil && !fi.Mode().IsRegular() {
		_ = r.Remove(rel)
	}
	if err := r.WriteFile(rel, data, mode); err != nil {
		return fmt.Errorf("writing %s in the build root: %w", p, err)
	}
	return r.Chmod(rel, mode)
}

func (c *chroot) rename(_ context.Context, from, to string) error {
	a, err := cleanRel(from)
	if err != nil {
		return err
	}
	b, err := cleanRel(to)
	if err != nil {
		return err
	}
	r, err := c.fs()
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Rename(a, b)
}

func (c *chroot) remove(_ context.Context, p string) error {
	rel, err := cleanRel(p)
	if err != nil {
		return err
	}
	r, err := c.fs()
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (c *chroot) exists(_ context.Context, p string) (bool, error) {
	rel, err := cleanRel(p)
	if err != nil {
		return false, err
	}
	r, err := c.fs()
	if err != nil {
		return false, err
	}
	defer r.Close()
	_, err = r.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (c *chroot) readDB(ctx context.Context) (*pkgmgr.DB, error) { return pkgmgr.Read(ctx, c.root) }

// tree stops what still runs in the root, unmounts everything but the overlay and removes the
// mount points it created: the merged directory is then the built tree.
func (c *chroot) tree(context.Context) (string, error) {
	killRootProcesses(c.root, c.logf)
	var errs []error
	for i := len(c.mounts) - 1; i >= 1; i-- {
		if err := unix.Unmount(c.mounts[i], unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", c.mounts[i], err))
		}
	}
	c.mounts = c.mounts[:min(len(c.mounts), 1)]
	for i := len(c.made) - 1; i >= 0; i-- {
		_ = os.Remove(c.made[i])
	}
	c.made = nil
	return c.root, errors.Join(errs...)
}

// close unmounts everything.
func (c *chroot) close() error {
	killRootProcesses(c.root, c.logf)
	return c.unmountAll()
}

func (c *chroot) unmountAll() error {
	var errs []error
	for i := len(c.mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(c.mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", c.mounts[i], err))
		}
	}
	c.mounts = nil
	return errors.Join(errs...)
}

// killRootProcesses kills every process whose root directory is root: daemons that a
// maintainer script started although policy-rc.d said no.
func killRootProcesses(root string, logf func(string, ...any)) {
	des, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if r, err := os.Readlink(filepath.Join("/proc", de.Name(), "root")); err == nil && r == root {
			logf("killing process %d left running in the build root", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
