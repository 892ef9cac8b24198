package convert

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vm2image/vm2image/internal/helperbin"
	"github.com/vm2image/vm2image/internal/workdir"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Options configure a conversion.
type Options struct {
	Source        string
	SourceOptions source.Options

	Output    string // -o: a docker-archive file, or an OCI layout directory with Format oci
	Format    Format // docker-archive (default) or oci
	Force     bool   // replace an existing -o and the files vm2image writes in FILE.context/
	NoContext bool   // write no FILE.context/ beside -o
	// ContextLayers: the layer tars the Dockerfile names are written into FILE.context/ too
	// (reflinked, hard-linked or copied from the conversion's own), so `docker build` works.
	ContextLayers bool
	Tag           string // image name:tag (default vm2image/HOSTNAME:latest)
	Load          bool   // load into the Docker engine
	Push          string // push to this registry reference
	Insecure      bool   // plain-http registries (127.0.0.1 and localhost always)
	Base          string // "auto" (default): from os-release through the table; else a reference
	Config        *image.Config
	NoPackages    bool
	Builder       Builder // chroot (default) or docker
	Strategy      diff.Strategy
	Transfer      Transfer // diff (default) or full
	Excludes      []string
	Compression   image.Compression
	WorkDir       string
	// CacheDir is the cache root (default /var/cache/vm2image): packages layers, unpacked roots,
	// base image blobs and apt archives, each kind in a subdirectory (see pkg/cache). It and
	// its subdirectories are made private (0700).
	CacheDir string
	// InitBinary is the static vm2image-init put in the runtime layer (default: FindInit).
	InitBinary string
	// KeepServiceEnv puts every service's whole environment in the image; by default only the
	// variables of services.EnvAllowed enter it, and the report names the others.
	KeepServiceEnv bool
	Created        time.Time
	Logf           func(format string, args ...any)
	// Notef hears what the operator must see even when Logf is quiet: a cache directory found
	// with a loose mode and made private (default Logf).
	Notef    func(format string, args ...any)
	Progress Progress

	// Services: IncludeServices keeps services left out by default or adds enabled units
	// (--service), SkipServices leaves services out (--skip-service), MainServices end the
	// container when they end (--main-service), StopOnFailure stops every service when one
	// fails (--stop-on-failure), RequireServices fails a conversion that finds none.
	IncludeServices, SkipServices, MainServices []string
	StopOnFailure, RequireServices              bool
	// Warnf hears what the user must see even without -v (default: Logf).
	Warnf func(format string, args ...any)

	// PackageLayers: one packages layer (single, the default) or one layer per package payload
	// plus a configuration layer (grained, see grained.go). MaxLayers bounds the image's layers
	// (default DefaultMaxLayers); OwnPackages ("name version arch", a fleet's plan) are the
	// payloads that get layers of their own first.
	PackageLayers PackageLayers
	MaxLayers     int
	OwnPackages   map[string]bool
	// CacheRepo is a registry repository shared as a layer cache (REGISTRY/REPO, see
	// docs/registry-cache.md): package payload layers missing from the local cache are taken
	// from it, those built here are stored in it, and a push mounts its blobs.
	CacheRepo string

	// Volumes are VM directories whose contents go into named volumes' initial content (an
	// archive beside Output each) instead of the image; VolumesAuto adds the data directories
	// the fit assessment finds (--volume, --volumes auto).
	Volumes     []string
	VolumesAuto bool

	// noPrefetch turns the VM's prefetch off; prefetchAlways starts it once the VM is
	// connected and has the diff wait for it, install or not (prefetch.go; tests).
	noPrefetch, prefetchAlways bool
}

func (o *Options) applyDefaults() error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Output == "" && !o.Load && o.Push == "" {
		return optionError("nothing to write: give -o FILE, --load or --push REF")
	}
	if o.Base == "" {
		o.Base = "auto"
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Notef == nil {
		o.Notef = o.Logf
	}
	if o.Warnf == nil {
		o.Warnf = o.Logf
	}
	if o.PackageLayers == "" {
		o.PackageLayers = PackageLayersSingle
	}
	if o.MaxLayers <= 0 {
		o.MaxLayers = DefaultMaxLayers
	}
	if o.Progress == nil {
		o.Progress = nopProgress{}
	}
	if o.Created.IsZero() {
		o.Created = time.Now().UTC().Truncate(time.Second)
	}
	if o.InitBinary == "" {
		p, err := FindInit()
		if err != nil {
			return err
		}
		o.InitBinary = p
	}
	return nil
}

// FindInit looks for the vm2image-init binary beside the running executable, then on PATH.
// (The command line reads $VM2IMAGE_INIT into Options.InitBinary.)
func FindInit() (string, error) {
	return helperbin.Find("vm2image-init", "the image's entrypoint", "VM2IMAGE_INIT")
}

// run is one conversion in progress.
type run struct {
	opts   Options
	src    source.Source
	work   string
	report *Report

	info    *wire.Info
	vmDB    *pkgmgr.DB
	procs   []procs.Process
	base    *image.Base
	baseDir string // the base unpacked
	oldDir  string // base + packages: what the VM diff compares against
	oldKey  string // oldDir's cache key
	// pre hashes the VM's files beside the install (prefetch.go), or nil; fail cancels the
	// conversion with a cause.
	pre  *prefetch
	fail context.CancelCauseFunc
	// precompressed is closed when the packages layer's background compression has ended.
	precompressed chan struct{}
	layers        []image.LayerFile
	roles         []string // of layers: packages, vm-diff, runtime
	cleanup       []func() error

	services     services.Config
	servicesYAML []byte

	rc           *regCache         // the registry cache (Options.CacheRepo), once opened
	layerSources map[string]string // diffID -> where the layer came from
}

// Run converts opts.Source into an image and returns the report. Outputs are written
// atomically: on error nothing is left at the output path.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if err := opts.applyDefaults(); err != nil {
		return nil, err
	}
	r := &run{opts: opts, report: newReport(opts)}
	start := time.Now()
	defer func() {
		if err != nil {
			r.report.fail(err, time.Since(start))
		}
	}()
	defer func() {
		for i := len(r.cleanup) - 1; i >= 0; i-- {
			if cerr := r.cleanup[i](); cerr != nil && err == nil {
				opts.Logf("cleaning up: %v", cerr)
			}
		}
	}()
	if err := r.prepareOutput(); err != nil {
		r.report.FailedPhase = PhaseOutput
		return r.report, err
	}
	// The prefetch's failure cancels the phases with it as the cause; when Run returns, this
	// cancel and then the cleanup (deferred above) stop the prefetch and wait for it.
	ctx, r.fail = context.WithCancelCause(ctx)
	defer r.fail(nil)
	for _, ph := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{PhaseConnect, r.connect},
		{PhaseBase, r.resolveBase},
		{PhasePackages, r.packages},
		{PhaseVolumes, r.volumes},
		{PhaseDiff, r.vmDiff},
		{PhaseRuntime, r.runtime},
		{PhaseAssemble, r.assembleAndWrite},
	} {
		if err := r.phase(ctx, ph.name, ph.fn); err != nil {
			r.report.FailedPhase = ph.name
			return r.report, err
		}
		if ph.name == PhaseConnect && r.opts.prefetchAlways {
			r.startPrefetch(ctx)
		}
	}
	r.report.Seconds = time.Since(start).Seconds()
	return r.report, nil
}

func (r *run) phase(ctx context.Context, name string, fn func(context.Context) error) error {
	r.opts.Progress.Phase(name)
	start := time.Now()
	err := fn(ctx)
	r.report.Phases = append(r.report.Phases, PhaseTime{Name: name, Seconds: time.Since(start).Seconds()})
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, errPrefetch) {
		err = cause // the prefetch failed and cancelled this phase: its error says why
	}
	r.opts.Progress.Done(name, err)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (r *run) connect(ctx context.Context) error {
	wd, err := workdir.New(r.opts.WorkDir, "vm2image-convert-") // 0700; a killed run's is swept
	if err != nil {
		return err
	}
	r.work = wd.Path()
	r.cleanup = append(r.cleanup, wd.Remove)
	so := r.opts.SourceOptions
	so.WorkDir = r.work
	if r.src, err = source.Open(ctx, r.opts.Source, so); err != nil {
		return err
	}
	r.cleanup = append(r.cleanup, r.src.Close)
	if r.info, err = r.src.Info(ctx); err != nil {
		return fmt.Errorf("reading system information: %w", err)
	}
	for _, p := range r.info.Problems {
		r.opts.Logf("warning: %s not read: %s", p.Path, p.Err)
	}
	if r.vmDB, err = r.src.Packages(ctx); err != nil {
		r.opts.Logf("no package database (%v): converting without a packages layer", err)
		r.vmDB = nil
	}
	if r.procs, err = r.src.Processes(ctx, wire.ProcessArgs{Env: true}); err != nil {
		return fmt.Errorf("listing processes: %w", err)
	}
	r.report.setSource(r.info)
	return nil
}
