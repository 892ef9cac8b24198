package builder

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// pacman, dnf, yum and zypper download into a package cache in the build root (which the
// packages layer leaves out), not into a directory of the builder's: their package files are
// copied out of the root into the build's private archive directory right after a download
// step, and published to the shared archive cache like apt's .deb files (archives.go): only
// the first download, before any package's code has run in the root. Nothing seeds a build
// from them (the installers download again), so the share feeds the package-grained layers
// only (pkg/convert), which check each file is the package it is named for and, whatever a
// file holds, leave the image's tree the built root's (the configuration layer is the
// difference). The Docker backend keeps them in its container: no archives there.

// packageCaches are where each manager's installers keep downloaded packages, in the root.
var packageCaches = map[pkgmgr.Manager][]string{
	pkgmgr.Pacman: {"var/cache/pacman/pkg"},
	pkgmgr.RPM:    {"var/cache/dnf", "var/cache/libdnf5", "var/cache/yum", "var/cache/zypp/packages"},
}

const (
	maxPackageDepth = 6       // directories under a cache (yum: ARCH/RELEASE/REPO/packages)
	maxPackageFiles = 1 << 16 // package files looked at in one root
	maxPackageFile  = 8 << 30 // bytes of one package file
)

// isPackageFile says whether name is a package file the archive cache keeps.
func isPackageFile(name string) bool { return cache.IsPackageFile(name) }

// rootDir is the build root as a host directory, "" for the Docker backend.
func (b *build) rootDir() string {
	switch be := b.be.(type) {
	case *chroot:
		return be.root
	case *outside:
		return be.chroot.root
	}
	return ""
}

// collectPackages copies the package files of the root's package caches into the build's
// archive directory, by base name (the first of a name wins). The root is untrusted: every
// lookup stays in it (os.Root), only regular files are taken, bounded.
func (b *build) collectPackages() error {
	caches := packageCaches[b.in.Plan.Manager]
	root := b.rootDir()
	if len(caches) == 0 || root == "" || b.archives == "" {
		return nil
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	seen := 0
	for _, dir := range caches {
		err := fs.WalkDir(r.FS(), dir, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				if p == dir { // no such cache here, or not one inside the root
					return fs.SkipAll
				}
				return err
			}
			if de.IsDir() && strings.Count(p[len(dir):], "/") >= maxPackageDepth {
				return fs.SkipDir
			}
			if !de.Type().IsRegular() || !isPackageFile(de.Name()) {
				return nil
			}
			if seen++; seen > maxPackageFiles {
				return fmt.Errorf("over %d package files", maxPackageFiles)
			}
			return copyPackageOut(r, p, filepath.Join(b.archives, path.Base(p)))
		})
		if err != nil {
			return fmt.Errorf("collecting the downloaded packages of /%s: %w", dir, err)
		}
	}
	return nil
}

// copyPackageOut copies the regular file p of r to dst (when dst is missing), atomically.
func copyPackageOut(r *os.Root, p, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return nil
	}
	// Non-blocking: a FIFO put in a file's place after the walk does not hang the build.
	in, err := r.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > maxPackageFile {
		return fmt.Errorf("%s: not a regular file of at most %d bytes", p, int64(maxPackageFile))
	}
	tmp := filepath.Join(filepath.Dir(dst), ".tmp-"+randomSuffix()+"-"+filepath.Base(dst))
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.LimitReader(in, maxPackageFile))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
