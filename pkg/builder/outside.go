package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vm2image/vm2image/internal/sandbox"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// A base without the plan's installer (only a shell and a filesystem package, ubi-micro, a
// distroless-style image) is installed into from outside: the converter host's installer,
// trusted code, runs in the build sandbox pivoted into a tool root that holds the host's /usr
// read-only, a small /etc of the builder's own, and the build overlay bound at outsideTarget;
// pkgmgr.OutsideStep points it there (dnf --installroot, zypper --root, pacman --root). The
// packages' scriptlets run as before: rpm and pacman chroot into the target to run them.

// outsideTarget is where the build root is bound in the tool root.
const outsideTarget = "/target"

// outside is the chroot backend with commands run from the tool root.
type outside struct {
	*chroot
	tool   string   // the tool root
	mounts []string // the tool root's mounts, in mount order
	opts   pkgmgr.OutsideOptions
}

var _ backend = (*outside)(nil)

// runsOutside says whether the plan must run from outside the base root: the base lacks a
// command the steps run, and the host has every installer the steps need.
func runsOutside(root string, p *pkgmgr.Plan) bool {
	if checkTools(root, p) == nil || !pkgmgr.CanRunOutside(p) {
		return false
	}
	for _, s := range p.Steps {
		if _, err := exec.LookPath(s.Argv[0]); err != nil {
			return false
		}
	}
	return true
}

// newOutside makes the tool root under workDir around the chroot backend c.
func newOutside(c *chroot, workDir, base string, osr pkgmgr.OSInfo, logf func(string, ...any)) (*outside, error) {
	o := &outside{chroot: c, tool: filepath.Join(workDir, "tool"),
		opts: pkgmgr.OutsideOptions{Root: outsideTarget, ReleaseVer: osr.VersionID, RPMDBPath: pkgmgr.RPMDBPath(base)}}
	if err := o.setup(); err != nil {
		_ = o.unmount()
		return nil, err
	}
	logf("installing from outside the base root: the host's installer, pointed at %s", outsideTarget)
	return o, nil
}

// setup builds the tool root: the host's /usr read-only and its top-level links, an /etc
// of the builder's own, the build root's /dev, scratch directories and the target.
func (o *outside) setup() error {
	for _, d := range []string{"usr", "etc", "proc", "sys", "dev", "tmp", "var/tmp", "var/log", "var/cache", "run", "root", strings.TrimPrefix(outsideTarget, "/")} {
		if err := os.MkdirAll(filepath.Join(o.tool, d), 0o755); err != nil {
			return err
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		if t, err := os.Readlink("/" + l); err == nil {
			if err := os.Symlink(t, filepath.Join(o.tool, l)); err != nil {
				return err
			}
		} else if fi, err := os.Stat("/" + l); err == nil && fi.IsDir() {
			if err := o.bind("/"+l, l, true); err != nil {
				return err
			}
		}
	}
	if err := o.writeEtc(); err != nil {
		return err
	}
	for _, m := range []struct {
		src, dst string
		ro       bool
	}{{"/usr", "usr", true}, {"/etc/ssl", "etc/ssl", true}, {"/etc/pki", "etc/pki", true},
		{filepath.Join(o.root, "dev"), "dev", false}, {o.root, strings.TrimPrefix(outsideTarget, "/"), false}} {
		if _, err := os.Stat(m.src); err != nil {
			continue
		}
		if err := o.bind(m.src, m.dst, m.ro); err != nil {
			return err
		}
	}
	return nil
}

// writeEtc writes the tool root's /etc: the loader's cache, name service files for root
// alone, the host's resolv.conf, rpm's database path and a dnf.conf without plugins.
func (o *outside) writeEtc() error {
	files := map[string]string{
		"etc/passwd":        "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":         "root:x:0:\n",
		"etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
		"etc/hosts":         "127.0.0.1 localhost\n::1 localhost\n",
		"etc/rpm/macros":    "%_dbpath " + o.opts.RPMDBPath + "\n",
		"etc/dnf/dnf.conf":  "[main]\nplugins=0\nreposdir=/nonexistent\n",
	}
	for _, p := range []string{"etc/ld.so.cache", "etc/resolv.conf", "etc/os-release"} {
		if b, err := os.ReadFile("/" + p); err == nil {
			files[p] = string(b)
		}
	}
	for p, data := range files {
		dst := filepath.Join(o.tool, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, []byte(data), 0o644); err != nil {
			return fmt.Errorf("writing the tool root's %s: %w", p, err)
		}
	}
	return nil
}

// bind binds src (a host path) at rel in the tool root, recursively, read-only if asked.
func (o *outside) bind(src, rel string, ro bool) error {
	dst := filepath.Join(o.tool, rel)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding %s into the tool root: %w", src, err)
	}
	o.mounts = append(o.mounts, dst)
	_ = unix.Mount("", dst, "", unix.MS_PRIVATE|unix.MS_REC, "")
	if ro {
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
		if err := unix.Mount("", dst, "", flags, ""); err != nil {
			return fmt.Errorf("making %s read-only in the tool root: %w", src, err)
		}
	}
	return nil
}

// run runs the step's host installer in a sandbox pivoted into the tool root, pointed at the
// target.
func (o *outside) run(ctx context.Context, argv, env []string, out io.Writer) error {
	if len(argv) == 0 {
		return errors.New("running an empty command")
	}
	s := pkgmgr.OutsideStep(pkgmgr.Step{Argv: argv}, o.opts)
	name, err := lookPathIn(o.tool, s.Argv[0], env)
	if err != nil {
		return err
	}
	err = sandbox.Run(ctx, sandbox.Spec{Root: o.tool, Path: name, Argv: s.Argv, Env: env, Network: o.network}, out)
	var se *sandbox.ExitError
	if errors.As(err, &se) && ctx.Err() == nil {
		return &exitError{argv: argv, code: se.Code}
	}
	return err
}

// unmount detaches the tool root's mounts, last first.
func (o *outside) unmount() error {
	killRootProcesses(o.tool, func(string, ...any) {})
	var errs []error
	for i := len(o.mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(o.mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", o.mounts[i], err))
		}
	}
	o.mounts = nil
	return errors.Join(errs...)
}

func (o *outside) tree(ctx context.Context) (string, error) {
	if err := o.unmount(); err != nil {
		return "", err
	}
	return o.chroot.tree(ctx)
}

func (o *outside) close() error { return errors.Join(o.unmount(), o.chroot.close()) }
