package pkgmgr

import (
	"os"
	"path"
	"path/filepath"
	"slices"
)

// A base without a package manager (ubi-micro, distroless-style images, a --base the user
// picks) cannot run a plan's steps inside itself. The builder then runs the converter host's
// own installer (trusted code) in the build sandbox, with the target root mounted at a path
// of the sandbox, and points it at that root: dnf --installroot, zypper --root, rpm --root,
// pacman --root with every path option inside the root. OutsideStep rewrites one step so.

// OutsideOptions say how the host's installer finds the target root.
type OutsideOptions struct {
	// Root is the target root's path where the installer runs (the builder's mount point).
	Root string
	// ReleaseVer is dnf's $releasever (the VM's VERSION_ID); "" lets dnf guess from the root.
	ReleaseVer string
	// RPMDBPath is the rpmdb directory inside the root (RPMDBPath).
	RPMDBPath string
}

// OutsideInstallers are the commands a step may run from outside the root, by manager: the
// builder runs a plan from outside only when the host has them all.
func OutsideInstallers(m Manager) []string {
	switch m {
	case RPM:
		return []string{"dnf", "zypper", "rpm"}
	case Pacman:
		return []string{"pacman"}
	}
	return nil
}

// CanRunOutside reports whether every step of p runs with a host installer pointed at a root.
func CanRunOutside(p *Plan) bool {
	for _, s := range p.Steps {
		if len(s.Argv) == 0 || !slices.Contains(OutsideInstallers(p.Manager), s.Argv[0]) {
			return false
		}
	}
	return len(p.Steps) > 0
}

// OutsideStep returns s with the options that point its installer at o.Root. Steps of other
// commands come back unchanged.
func OutsideStep(s Step, o OutsideOptions) Step {
	if len(s.Argv) == 0 {
		return s
	}
	r := o.Root
	var opts []string
	switch s.Argv[0] {
	case "dnf":
		// Plugins are host code that the VM's configuration must not choose; the repository
		// files are the root's (carried through the allowlist), never the host's. dnf keeps
		// its cache, logs and history in the root (excluded from the layer, see builder).
		opts = []string{"--installroot=" + r, "--noplugins", "--setopt=reposdir=" + path.Join(r, "etc/yum.repos.d")}
		if o.ReleaseVer != "" {
			opts = append(opts, "--releasever="+o.ReleaseVer)
		}
	case "zypper":
		opts = []string{"--root", r}
	case "rpm":
		opts = []string{"--root=" + r}
		if o.RPMDBPath != "" {
			opts = append(opts, "--dbpath="+o.RPMDBPath)
		}
	case "pacman":
		opts = []string{"--root", r, "--dbpath", path.Join(r, "var/lib/pacman"), "--config", path.Join(r, "etc/pacman.conf"),
			"--cachedir", path.Join(r, "var/cache/pacman/pkg"), "--gpgdir", path.Join(r, "etc/pacman.d/gnupg"),
			"--hookdir", path.Join(r, "etc/pacman.d/hooks"), "--logfile", path.Join(r, "var/log/pacman.log")}
	default:
		return s
	}
	t := s
	t.Argv = slices.Concat(s.Argv[:1], opts, s.Argv[1:])
	return t
}

// RPMDBPath returns the rpmdb directory of the root, absolute inside it: where its database
// is, else where a link to it points (Fedora links /var/lib/rpm to /usr/lib/sysimage/rpm),
// else the newer location if the root has its parent, else /var/lib/rpm.
func RPMDBPath(root string) string {
	for _, dir := range rpmDBDirs {
		for _, name := range rpmDBFiles {
			if fi, err := os.Lstat(filepath.Join(root, dir, name)); err == nil && fi.Mode().IsRegular() {
				return "/" + dir
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/lib/sysimage")); err == nil && fi.IsDir() {
		return "/usr/lib/sysimage/rpm"
	}
	return "/var/lib/rpm"
}
