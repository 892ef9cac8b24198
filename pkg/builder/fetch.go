package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// A layer from the cache says which packages the build installed, but the package files may
// not be in the shared archive directory: the entry came from a registry cache (only the layer
// travels), or a prune took the archive partition and left the layer. Package-grained images
// need the files. FetchArchives gets them without installing anything: a build root is
// prepared as for a build of the same plan, and only the installer's index refreshes and the
// download halves of its install commands run (network.go). The build's private archive
// directory is seeded from the share as for a build, so only the files the share lacks are
// downloaded. No package's code runs in that root: everything downloaded is as trustworthy as
// a build's first download and is published to the share (archives.go). The plan is the
// build's own (from the VM's database, as for Build), never the record of a cache entry, which
// may have come from a registry.

// FetchArchives downloads the package files that in's plan installs and in's shared archive
// directory (Result.Archives of a Build of in) lacks. Packages the repositories no longer
// serve, and those only the build's second pass installed, stay missing: the error names the
// steps that failed, and the directory holds whatever did download.
func FetchArchives(ctx context.Context, in Input, opts Options) error {
	if err := opts.applyDefaults(); err != nil {
		return err
	}
	if in.VM == nil || in.Plan == nil {
		return errors.New("fetching package files: no VM package database or plan")
	}
	if !keepsArchives(in, opts) {
		return fmt.Errorf("fetching package files: the %s backend keeps no %s package files here", opts.Backend, in.Plan.Manager)
	}
	m := in.Plan.Manager
	in.RepoFiles, _ = pkgmgr.FilterConfig(m, in.RepoFiles)
	if err := in.check(opts); err != nil {
		return err
	}
	workDir, err := os.MkdirTemp(opts.WorkDir, "vm2image-fetch-")
	if err != nil {
		return fmt.Errorf("creating work directory: %w", err)
	}
	b := &build{in: in, opts: opts, workDir: workDir, res: &Result{}}
	defer func() {
		if b.be != nil {
			_ = b.be.close()
		}
		_ = removeTree(workDir)
	}()
	archives, err := b.seedArchives()
	if err != nil {
		return err
	}
	if err := b.start(ctx, archives); err != nil {
		return err
	}
	downloads := 0
	for _, s := range in.Plan.Steps {
		run, network := s, needsNetwork(m, s)
		if sp, isInstall := offlineSplit(m, s); isInstall {
			run, network = sp.download, true
			downloads++
		} else if !indexStep(m, s) {
			continue // marks, removals: nothing to download
		}
		out, err := b.runStep(ctx, run, network)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			b.failed(run.Name, err, out, false)
		}
	}
	if downloads == 0 {
		return fmt.Errorf("fetching package files: %s installs in one step, no download-only form", in.Plan.Frontend)
	}
	if packageCaches[m] != nil {
		if err := b.collectPackages(); err != nil {
			return fmt.Errorf("collecting the downloaded packages: %w", err)
		}
	}
	if err := publishArchives(b.archives, filepath.Join(opts.AptArchiveCache, archiveShareKey(in))); err != nil {
		return fmt.Errorf("sharing the downloaded packages: %w", err)
	}
	if len(b.res.Errors) > 0 {
		return fmt.Errorf("fetching package files: %s", strings.Join(b.res.Errors, "; "))
	}
	return nil
}

// keepsArchives says whether a build of in keeps its package files in the shared archive
// directory: apt's .deb files (both backends), pacman's and rpm's from the chroot backend.
func keepsArchives(in Input, opts Options) bool {
	m := in.Plan.Manager
	return opts.AptArchiveCache != "" && (m == pkgmgr.Dpkg || packageCaches[m] != nil && opts.Backend != Docker)
}

// indexStep says whether s, a step of a plan of manager m, enables an architecture or
// refreshes the installer's indexes: what a download needs first, with no package's code run.
func indexStep(m pkgmgr.Manager, s pkgmgr.Step) bool {
	a := s.Argv
	if len(a) < 2 {
		return false
	}
	switch m {
	case pkgmgr.Dpkg:
		return a[0] == "apt-get" && a[1] == "update" || a[0] == "dpkg" && a[1] == "--add-architecture"
	case pkgmgr.RPM:
		return a[0] == "zypper" && needsNetwork(m, s)
	case pkgmgr.Pacman:
		return a[0] == "pacman" && a[1] == "-Sy"
	}
	return false
}
