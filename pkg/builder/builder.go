package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// Backends.
const (
	// Chroot runs every command in a sandbox (namespaces, pivot_root, reduced capabilities)
	// on an overlay of the base root; needs root. The name is kept from the plain chroot it was.
	Chroot = "chroot"
	Docker = "docker" // a container of the base image in the Docker engine
)

// Ways to disable fsync (Options.NoFsyncMethod).
const (
	NoFsyncAuto      = ""          // eatmydata when it loads in the root, else dpkg's unsafe-io
	NoFsyncEatMyData = "eatmydata" // LD_PRELOAD libeatmydata (the root's, or the host's copied in)
	NoFsyncUnsafeIO  = "unsafe-io" // dpkg --force-unsafe-io (dpkg only; scripts still fsync)
)

// Options control Build.
type Options struct {
	// Backend is Chroot (default) or Docker.
	Backend string
	// WorkDir holds the build's temporary files (the overlay's upper directory, the export);
	// default the system's temporary directory.
	WorkDir string
	// Fsync keeps fsync on during the installation. Off by default: eatmydata when it loads
	// in the root (the root's own library, or the host's copied into /tmp of the root), else
	// dpkg's force-unsafe-io; installing is several times faster and a build that dies is
	// thrown away anyway.
	Fsync bool
	// NoFsyncMethod forces one way of disabling fsync (NoFsyncEatMyData, NoFsyncUnsafeIO), for
	// measurements; empty chooses.
	NoFsyncMethod string
	// AptArchiveCache is a host directory of downloaded .deb files shared by builds, so that
	// repeated builds do not download the same packages again. It is never part of a layer.
	AptArchiveCache string
	// CacheDir is the layer cache (default DefaultCacheDir).
	CacheDir string
	// StepTimeout bounds each command of the plan (default 30 minutes).
	StepTimeout time.Duration
	// Logf reports progress; Output receives the package manager's output (it must be safe
	// for concurrent use when Builds share it). Both may be nil.
	Logf   func(string, ...any)
	Output io.Writer

	// unsandboxed runs the Chroot backend's commands in a plain chroot(2) with the host's
	// /proc, as before the sandbox: the benchmark's baseline, never for a conversion.
	unsandboxed bool
}

func (o *Options) applyDefaults() error {
	switch o.Backend {
	case "":
		o.Backend = Chroot
	case Chroot, Docker:
	default:
		return fmt.Errorf("unknown builder backend %q: want chroot or docker", o.Backend)
	}
	switch o.NoFsyncMethod {
	case NoFsyncAuto, NoFsyncEatMyData, NoFsyncUnsafeIO:
	default:
		return fmt.Errorf("unknown way to disable fsync %q: want eatmydata or unsafe-io", o.NoFsyncMethod)
	}
	if o.WorkDir == "" {
		o.WorkDir = os.TempDir()
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = 30 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	return nil
}

// Input is what Build installs, and where.
type Input struct {
	// BaseRoot is the unpacked base image. The chroot backend mounts it read-only as the lower
	// layer of an overlay; both backends diff the built tree against it.
	BaseRoot string
	// BaseImage is the Docker backend's image reference in the engine (for example what
	// `docker import` of BaseRoot gave).
	BaseImage string
	// BaseDigest identifies the base in the cache key.
	BaseDigest string
	VM, Base   *pkgmgr.DB
	Plan       *pkgmgr.Plan // from pkgmgr.NewPlan(VM, Base, ...)
	// RepoFiles are the VM's repository configuration and keys, by absolute path in the VM
	// (Plan.RepoFiles says which), written into the build root before the plan runs.
	RepoFiles map[string][]byte
	// OS is the VM's os-release (dnf's $releasever when installing from outside the root).
	OS pkgmgr.OSInfo
}

// Result is a built (or cached) packages layer.
type Result struct {
	// LayerPath is the uncompressed OCI layer tar, in the cache directory (or, for a build
	// with errors, which is not cached, in the work directory until the cleanup runs).
	LayerPath   string
	LayerDiffID string // "sha256:<hex>" of the layer tar
	LayerSize   int64
	// Root is the chroot backend's built root (the overlay's merged directory) until the
	// cleanup runs; "" for the Docker backend and for cache hits.
	Root string
	// Exported is the Docker backend's exported tree, unpacked, until the cleanup runs.
	Exported string
	// takeUpper is TakeUpper's work for a fresh chroot build, else nil.
	takeUpper func() (string, error)
	// Installed are the build root's packages after the build (base and new).
	Installed []pkgmgr.Package
	// Missing are the VM's packages the root lacks after both passes: the repository no
	// longer serves them. VersionDiffers are those installed at another version (BaseVersion
	// holds the built version).
	Missing        []pkgmgr.Package
	VersionDiffers []pkgmgr.Change
	// RootsBefore and RootsAfter are the plan's install set and install line sizes.
	RootsBefore, RootsAfter int
	InstallTime, LayerTime  time.Duration
	// CacheHit says the layer came from the cache; CacheKey is its key.
	CacheHit bool
	CacheKey string
	// Errors are what went wrong without stopping the build: a step that failed, a repository
	// that does not answer. The files of what was not installed are left to the VM's diff.
	Errors []string
	// Installer says how the packages were installed: "in the base root (dnf)" or "from
	// outside the base root (the host's dnf)".
	Installer string
	// ConfigDropped is the VM's package manager configuration left out of the build root:
	// keys outside the allowlist (hooks, programs, paths), files the builder does not carry.
	ConfigDropped []pkgmgr.DroppedConfig
	// Archives is the shared archive directory of the build's package files (.deb, pacman's
	// .pkg.tar.*, .rpm; hold it with HoldArchives while reading), "" without an archive cache.
	Archives string
}

// TakeUpper ends a fresh chroot build's overlay (Root is gone afterwards) and returns its
// upper directory: the files the build wrote, with overlay whiteouts and xattrs, that the
// caller may move out (archive.Donor) until the cleanup runs. "" for the Docker backend and
// cache hits.
func (r *Result) TakeUpper() (string, error) {
	if r.takeUpper == nil {
		return "", nil
	}
	r.Root = ""
	return r.takeUpper()
}

// Build installs in.Plan into the base root and returns the packages layer, from the cache
// when an entry for the same base, package set and repository configuration exists. Two
// Builds of the same key, in one process or several, build once: the other waits and reuses
// the entry. The cleanup releases the entry (Prune never removes an entry in use) and removes
// the build's temporary files and mounts; call it when done with the Result.
func Build(ctx context.Context, in Input, opts Options) (*Result, func() error, error) {
	if err := opts.applyDefaults(); err != nil {
		return nil, nil, err
	}
	if err := in.check(opts); err != nil {
		return nil, nil, err
	}
	// The VM's configuration is data: only allowlisted keys reach the build root (and the key).
	var dropped []pkgmgr.DroppedConfig
	in.RepoFiles, dropped = pkgmgr.FilterConfig(in.Plan.Manager, in.RepoFiles)
	for _, d := range dropped {
		opts.Logf("not carried into the build root: %s", d)
	}
	res, cleanup, err := buildOrReuse(ctx, in, opts)
	if res != nil {
		res.ConfigDropped = dropped
		if keepsArchives(in, opts) {
			res.Archives = filepath.Join(opts.AptArchiveCache, archiveShareKey(in))
		}
	}
	return res, cleanup, err
}

// Cached reports whether the layer of in is in the cache now (a later Build may still build it:
// an entry can be pruned or found damaged in between). It takes no lock.
func Cached(in Input, opts Options) bool {
	if opts.applyDefaults() != nil || in.Plan == nil || in.VM == nil {
		return false
	}
	in.RepoFiles, _ = pkgmgr.FilterConfig(in.Plan.Manager, in.RepoFiles)
	_, err := readMeta(filepath.Join(opts.CacheDir, CacheKey(in)))
	return err == nil
}

// buildOrReuse finds the layer of in in the cache or builds it.
func buildOrReuse(ctx context.Context, in Input, opts Options) (*Result, func() error, error) {
	key := CacheKey(in)
	if err := cache.MkdirPrivate(opts.CacheDir, opts.Logf); err != nil {
		return nil, nil, fmt.Errorf("creating layer cache: %w", err)
	}
	start := time.Now()
	m, lock, err := acquire(ctx, opts.CacheDir, key)
	if err != nil {
		return nil, nil, err
	}
	if m != nil {
		res := resultOf(m, filepath.Join(opts.CacheDir, key))
		res.CacheHit = true
		opts.Logf("packages layer %s: cache hit in %s (%s)", key[:12], time.Since(start).Round(time.Millisecond), res.LayerDiffID)
		return res, func() error { lock.release(); return nil }, nil
	}
	res, cleanup, err := buildEntry(ctx, in, opts, key, lock)
	if err != nil {
		lock.release()
		return nil, nil, err
	}
	return res, func() error { err := cleanup(); lock.release(); return err }, nil
}

// check refuses input that cannot build.
func (in *Input) check(opts Options) error {
	switch {
	case in.Plan == nil:
		return errors.New("building packages layer: no install plan")
	case in.VM == nil:
		return errors.New("building packages layer: no VM package database")
	case in.BaseDigest == "":
		return errors.New("building packages layer: no base digest for the cache key")
	case in.BaseRoot == "":
		return errors.New("building packages layer: no base root to diff against")
	case opts.Backend == Docker && in.BaseImage == "":
		return errors.New("building packages layer with docker: no base image")
	case opts.Backend == Chroot && os.Geteuid() != 0:
		return errors.New("building packages layer with chroot: needs root (mounts, chroot)")
	case opts.Backend == Docker && os.Geteuid() != 0:
		return errors.New("building packages layer with docker: needs root (the export is unpacked with its owners)")
	}
	fi, err := os.Stat(in.BaseRoot)
	if err != nil {
		return fmt.Errorf("reading base root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("reading base root: %s is not a directory", in.BaseRoot)
	}
	if opts.Backend == Chroot && runsOutside(in.BaseRoot, in.Plan) {
		return nil // the host's installer, pointed at the root (outside.go)
	}
	return checkTools(in.BaseRoot, in.Plan)
}

// checkTools makes sure the base root has the commands the plan's steps run.
func checkTools(root string, p *pkgmgr.Plan) error {
	seen := map[string]bool{}
	for _, s := range p.Steps {
		if len(s.Argv) == 0 || seen[s.Argv[0]] {
			continue
		}
		seen[s.Argv[0]] = true
		if !hasCommand(root, s.Argv[0]) {
			return fmt.Errorf("building packages layer: the base root %s has no %s (step %q): it cannot install %s packages", root, s.Argv[0], s.Name, p.Manager)
		}
	}
	return nil
}

// hasCommand looks name up in the usual PATH directories of root (symlinks count: usrmerge).
func hasCommand(root, name string) bool {
	if filepath.IsAbs(name) {
		_, err := os.Lstat(filepath.Join(root, name))
		return err == nil
	}
	for _, dir := range []string{"usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"} {
		if _, err := os.Lstat(filepath.Join(root, dir, name)); err == nil {
			return true
		}
	}
	return false
}

// CacheKey is the cache key of in: pkgmgr.SetKey of the base digest, the manager, the VM's
// install set and a digest of the repository files and of the plan's commands (whatever
// else decides what the layer holds). It does not depend on the backend.
func CacheKey(in Input) string {
	h := sha256.New()
	fmt.Fprintf(h, "vm2image builder v1\n")
	paths := make([]string, 0, len(in.RepoFiles))
	for p := range in.RepoFiles {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(h, "file %q %d\n", p, len(in.RepoFiles[p]))
		h.Write(in.RepoFiles[p])
	}
	for _, s := range in.Plan.Steps {
		fmt.Fprintf(h, "step %q %q %v\n", s.Argv, s.Env, s.AllowFail)
	}
	wf := make([]string, 0, len(in.Plan.WriteFiles))
	for p := range in.Plan.WriteFiles {
		wf = append(wf, p)
	}
	sort.Strings(wf)
	for _, p := range wf {
		fmt.Fprintf(h, "write %q %q\n", p, in.Plan.WriteFiles[p])
	}
	base := in.Base
	if base == nil {
		base = &pkgmgr.DB{Manager: in.VM.Manager}
	}
	install := pkgmgr.CompareSets(in.VM, base).Install
	return pkgmgr.SetKey(in.BaseDigest, in.VM.Manager, install, hex.EncodeToString(h.Sum(nil)))
}

// resultOf makes the Result of a cache entry.
func resultOf(m *meta, dir string) *Result {
	return &Result{LayerPath: filepath.Join(dir, layerFile), LayerDiffID: m.LayerDiffID, LayerSize: m.LayerSize,
		Installed: m.Installed, Missing: m.Missing, VersionDiffers: m.VersionDiffers,
		RootsBefore: m.RootsBefore, RootsAfter: m.RootsAfter, InstallTime: m.InstallTime, LayerTime: m.LayerTime,
		CacheKey: m.Key, Errors: m.Errors, Installer: m.Installer}
}

// metaOf is the meta.json of a build's result.
func metaOf(res *Result, in Input, opts Options) *meta {
	base := in.Base
	if base == nil {
		base = &pkgmgr.DB{}
	}
	return &meta{Version: metaVersion, Key: res.CacheKey, Created: time.Now().UTC(), Backend: opts.Backend,
		BaseDigest: in.BaseDigest, Manager: in.VM.Manager, Packages: len(pkgmgr.CompareSets(in.VM, base).Install),
		LayerDiffID: res.LayerDiffID, LayerSize: res.LayerSize, Installed: res.Installed, Missing: res.Missing,
		VersionDiffers: res.VersionDiffers, RootsBefore: res.RootsBefore, RootsAfter: res.RootsAfter,
		InstallTime: res.InstallTime, LayerTime: res.LayerTime, Errors: res.Errors, Installer: res.Installer}
}

// removeTree removes a work directory, tolerating one that is gone.
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
