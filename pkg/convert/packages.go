package convert

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/internal/filecopy"
	"github.com/vm2image/vm2image/pkg/builder"
	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/wire"
)

// maxRepoFile bounds one repository configuration file or key taken from the VM, and
// maxRepoTotal all of them together.
const (
	maxRepoFile  = 4 << 20
	maxRepoTotal = 64 << 20
)

func (r *run) packages(ctx context.Context) error {
	p := &Packages{}
	r.report.Packages = p
	skip := func(why string) error {
		p.Skipped = why
		r.opts.Logf("no packages layer: %s", why)
		return nil
	}
	switch {
	case r.opts.NoPackages:
		return skip("--no-packages")
	case r.vmDB == nil:
		return skip("the VM has no package database the agent can read")
	}
	baseDB, err := pkgmgr.Read(ctx, r.baseDir)
	if err != nil {
		return skip(fmt.Sprintf("the base image has no package database (%v)", err))
	}
	if baseDB.Manager != r.vmDB.Manager {
		return skip(fmt.Sprintf("the base uses %s, the VM %s", baseDB.Manager, r.vmDB.Manager))
	}
	p.Manager, p.VM, p.Base = r.vmDB.Manager, len(r.vmDB.Packages), len(baseDB.Packages)
	p.VMRoots = len(pkgmgr.NewGraph(r.vmDB, pkgmgr.GraphOptions{}).RootNames())
	repo, err := r.fetchFiles(ctx, pkgmgr.RepoConfigPaths(r.vmDB.Manager))
	if err != nil {
		return fmt.Errorf("reading the VM's repository configuration: %w", err)
	}
	conf := map[string]string{}
	for k, v := range repo {
		conf[k] = string(v)
	}
	osr := pkgmgr.OSInfo{ID: r.info.OS.ID, VersionID: r.info.OS.VersionID, IDLike: r.info.OS.IDLike}
	// Recommends off, for the graph and the installer alike: a package the VM has only because
	// something recommended it becomes a root and is named, and nothing the VM lacks (a
	// recommendation its admin removed) is pulled in to be whited out again by the diff.
	noRecommends := false
	plan, err := pkgmgr.NewPlan(r.vmDB, baseDB, osr, pkgmgr.PlanOptions{Config: conf, Recommends: &noRecommends})
	if err != nil {
		return fmt.Errorf("planning the packages layer: %w", err)
	}
	p.InstallSet, p.RootsBefore, p.RootsAfter = plan.RootsBefore, plan.RootsBefore, plan.RootsAfter
	if plan.RootsBefore == 0 {
		return skip("the base already holds every package of the VM")
	}
	return r.build(ctx, plan, baseDB, repo)
}

func (r *run) build(ctx context.Context, plan *pkgmgr.Plan, baseDB *pkgmgr.DB, repo map[string][]byte) error {
	p := r.report.Packages
	in := builder.Input{BaseRoot: r.baseDir, BaseDigest: r.base.Digest.String(), VM: r.vmDB, Base: baseDB, Plan: plan, RepoFiles: repo,
		OS: pkgmgr.OSInfo{ID: r.info.OS.ID, VersionID: r.info.OS.VersionID, IDLike: r.info.OS.IDLike}}
	root := r.cacheRoot()
	layers, err := root.Open(cache.Layers, r.opts.Notef)
	if err != nil {
		return err
	}
	archives, err := root.Open(cache.AptArchives, r.opts.Notef)
	if err != nil {
		return err
	}
	opts := builder.Options{Backend: string(r.opts.Builder), WorkDir: r.work, CacheDir: layers, Logf: r.opts.Logf,
		AptArchiveCache: archives, Output: r.packageCounter()}
	if r.opts.Builder == builder.Docker {
		ref, err := r.baseInEngine(ctx)
		if err != nil {
			return err
		}
		in.BaseImage = ref
	}
	if err := r.packagesFromRegistry(ctx, in, layers); err != nil {
		return err
	}
	cached := builder.Cached(in, opts)
	if r.opts.PackageLayers == PackageLayersGrained {
		// The install set's grained layers from the registry cache: nothing to install. With
		// the build in the local cache, only whether the registry cache lacks them.
		if hit, err := r.grainedFromRegistry(ctx, in, !cached); hit || err != nil {
			return err
		}
	}
	if !cached {
		r.startPrefetch(ctx) // the VM's side, beside the install (prefetch.go)
	}
	start := time.Now()
	res, cleanup, err := builder.Build(ctx, in, opts)
	if err != nil {
		return fmt.Errorf("building the packages layer: %w", err)
	}
	p.InstallSeconds = time.Since(start).Seconds()
	if r.pre != nil && !res.CacheHit {
		r.pre.overlapped = true // the VM's prefetch ran beside the install (prefetch.go)
	}
	p.Installed = len(res.Installed)
	for _, m := range res.Missing {
		p.Missing = append(p.Missing, m.Name+"="+m.Version)
	}
	p.VersionDiffers, p.Errors, p.Installer = res.VersionDiffers, res.Errors, res.Installer
	for _, d := range res.ConfigDropped {
		p.ConfigDropped = append(p.ConfigDropped, d.String())
	}
	p.LayerBytes, p.LayerDiffID, p.CacheHit, p.CacheKey = res.LayerSize, res.LayerDiffID, res.CacheHit, res.CacheKey
	r.notePackagesSource(res, layers)
	// The VM diff compares against what the image will hold: the base with the packages layer
	// applied (the built root also holds what the layer leaves out: caches, lists, logs).
	// r.baseDir is a cached, read-only tree: the layer is applied to a cached copy, its files
	// moved from the build's overlay when it was just built (applyLayer). Keep our own name for
	// the cached layer file (a prune cannot take it from us), then let the build's mounts,
	// scratch and cache lock go.
	layerPath := filepath.Join(r.work, "packages.layer.tar")
	err = filecopy.Copy(ctx, res.LayerPath, layerPath, 0o600, filecopy.HardLink)
	diffID, herr := v1.NewHash(res.LayerDiffID)
	if err == nil && herr != nil {
		err = fmt.Errorf("reading the packages layer's diffID: %w", herr)
	}
	// The layer is compressed for the image in the background, beside the base+packages tree
	// and the VM diff (with package-grained layers the image holds the payloads instead).
	lf := image.LayerFile{Path: layerPath, Comment: "vm2image: packages", DiffID: diffID}
	grained := r.opts.PackageLayers == PackageLayersGrained
	if err == nil && !grained {
		r.precompress(ctx, lf)
	}
	if err == nil {
		err = r.applyLayer(ctx, layerPath, res.LayerDiffID, res)
	}
	if cerr := cleanup(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if grained {
		fetched := r.completeArchives(ctx, in, opts, res, baseDB)
		if err := r.grain(ctx, res.Archives, res.Installed, baseDB); err != nil {
			return err
		}
		r.report.Packages.Grained.Downloaded = fetched
		return nil
	}
	r.scanSecretsOnce(layerPath, "packages", diffID)
	r.layers = append(r.layers, lf)
	r.roles = append(r.roles, "packages")
	return nil
}

// fetchFiles reads the named files (directories: their files, recursively) from the VM.
// Paths the VM lacks are left out.
func (r *run) fetchFiles(ctx context.Context, paths []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, p := range paths {
		ts, err := r.src.Files(ctx, wire.TreeArgs{Paths: []string{p}, Recursive: true, Compression: "gzip"})
		if err != nil {
			return nil, err
		}
		err = readTarFiles(ts, out)
		ts.Close()
		if err != nil {
			r.opts.Logf("repository configuration %s: %v", p, err) // absent on this VM
		}
	}
	return out, nil
}

func readTarFiles(rd io.Reader, out map[string][]byte) error {
	tr := tar.NewReader(rd)
	total := int64(0)
	for _, b := range out {
		total += int64(len(b))
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg || h.Size > maxRepoFile {
			continue
		}
		if total += h.Size; total > maxRepoTotal {
			return fmt.Errorf("repository configuration over %d bytes in all at %s", maxRepoTotal, h.Name)
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxRepoFile))
		if err != nil {
			return err
		}
		out["/"+path.Clean(h.Name)] = b
	}
}

// precompress compresses the packages layer into the image cache in the background, beside the
// VM diff, so that the image's assembly finds it there; assembleAndWrite waits for it.
func (r *run) precompress(ctx context.Context, lf image.LayerFile) {
	if r.opts.Compression != "" && r.opts.Compression != image.Gzip && r.opts.Compression != image.Zstd {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		if err := image.Precompress(ctx, r.cacheRoot().Path(cache.Images), lf, r.opts.Compression); err != nil {
			r.opts.Logf("compressing the packages layer ahead: %v (assembly does it)", err)
			return
		}
		r.opts.Logf("packages layer compressed (or found compressed) in %s", time.Since(start).Round(time.Millisecond))
	}()
	r.precompressed = done
	r.cleanup = append(r.cleanup, func() error { cancel(); <-done; return nil })
}
