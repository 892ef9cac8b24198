package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vm2image/vm2image/internal/units"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/image"
)

type convertOptions struct {
	sourceOptions
	progressOptions
	volumes                                                                     []string
	volumesMode                                                                 string
	output, format, tag, push, base, builder, strategy, transfer, compression   string
	configFile, report, cacheDir                                                string
	load, noPackages, insecure, keepServiceEnv, force, noContext, contextLayers bool
	excludes                                                                    []string
	compressionSet                                                              bool // --compression given: it wins over --config's
	services, skipServices, mainServices                                        []string
	stopOnFailure, requireServices                                              bool
	packageLayers                                                               string
	maxLayers                                                                   int
	cacheRepo                                                                   string // --cache-repo: a registry repository shared as a layer cache
}

func newConvertCmd() *cobra.Command {
	var o convertOptions
	cmd := &cobra.Command{
		Use:   "convert SOURCE",
		Short: "Convert a live VM into a layered, runnable image",
		Long: `Convert reads a VM through its agent (or dir:/tar: sources), picks a base image for its OS,
reinstalls the VM's packages in a layer of their own, adds the VM's remaining differences as a
second layer and a small runtime layer whose init starts the services the VM was running, and
writes the image: a docker-archive (-o), an OCI layout (--format oci -o DIR), into the Docker
engine (--load) or to a registry (--push). Beside -o it writes FILE.context/ with an equivalent
Dockerfile and its build context: services.yaml, compose.yaml, vm2image-init and the layer tars
the Dockerfile ADDs (reflinked or hard-linked from the conversion's own files where the
filesystem allows, else copied; --context-layers=false leaves them out), so that
"docker build FILE.context" rebuilds an equivalent image. Outputs are written atomically.

Every flag and output path is checked before the source is opened. An existing -o or
FILE.context/ is not replaced without --force, and --force replaces only the files vm2image
writes: other files in FILE.context/ are left alone. Two conversions to the same -o at once:
the second fails at once.

--volume PATH and --volumes auto (the database and mail directories "inspect --fit" finds) move
a directory's contents out of the image into FILE.volume-NAME.tar beside -o, with owners, modes
and xattrs; compose.yaml mounts the named volume (docs/fit.md says how to load it). Progress goes
to standard error: redrawn lines on a terminal, plain lines otherwise, --json-progress, --quiet.

The diff strategy is checksum by default, as in "vm2image diff": content digests decide
whether a file changed (an mtime-only difference is no change).`,
		Example: `  vm2image convert 10.0.0.5:49153 --token-file token -o web.tar --tag web:converted
  vm2image convert 10.0.0.5:49153 --token-file token --load --report report.json
  vm2image convert dir:/srv/vm --base docker-daemon:debian:bookworm --format oci -o web.oci
  vm2image convert 10.0.0.5:49153 --token-file token --push registry.local:5000/web:1
  vm2image convert dir:/srv/vm -o db.tar --tag db:1 --volumes auto`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.compressionSet = cmd.Flags().Changed("compression")
			return runConvert(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.sourceOptions.AddFlags(cmd.Flags())
	o.progressOptions.AddFlags(cmd.Flags())
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "write the image here: a docker-archive file, or a directory with --format oci")
	f.StringVar(&o.format, "format", "docker-archive", "docker-archive or oci")
	f.StringVar(&o.tag, "tag", "", "image name (default vm2image/HOSTNAME:latest)")
	f.BoolVar(&o.load, "load", false, "load the image into the Docker engine")
	f.StringVar(&o.push, "push", "", "push the image to this registry reference")
	f.BoolVar(&o.insecure, "insecure", false, "talk plain http to the registry")
	f.StringVar(&o.base, "base", "auto", "base image: auto (from the VM's os-release) or a reference (docker-daemon:, oci:, docker-archive:, registry://, http(s)://)")
	f.BoolVar(&o.noPackages, "no-packages", false, "do not reinstall the VM's packages in a layer of their own")
	f.StringVar(&o.builder, "builder", "chroot", "where packages are installed: chroot or docker")
	f.StringVar(&o.strategy, "strategy", string(convert.DefaultStrategy), "diff strategy: rsync, checksum or rdiff")
	f.BoolVar(&o.force, "force", false, "replace an existing -o and the files vm2image writes in FILE.context/")
	f.BoolVar(&o.noContext, "no-context", false, "write no FILE.context/ beside -o")
	f.BoolVar(&o.contextLayers, "context-layers", true, "write the layer tars the Dockerfile names into FILE.context/ (reflinks or hard links where possible)")
	f.StringVar(&o.transfer, "transfer", "diff", "diff (only what the converter lacks) or full (the whole filesystem once)")
	f.StringArrayVar(&o.excludes, "exclude", nil, "anchored glob of VM paths to leave out (repeatable; added to the defaults)")
	f.StringVar(&o.compression, "compression", "gzip", "layer compression: gzip or zstd (Docker 20.10 cannot load zstd)")
	f.StringVar(&o.configFile, "config", "", "YAML config file (base image table, ...)")
	f.StringVar(&o.report, "report", "", "write the conversion report (JSON) here")
	addCacheDirFlag(f, &o.cacheDir)
	f.BoolVar(&o.keepServiceEnv, "keep-service-env", false, "put each service's whole environment in the image (by default only PATH, LANG, LC_*, HOME, USER, TZ and the like: the rest can hold secrets)")
	f.StringArrayVar(&o.services, "service", nil, "keep a service left out by default (sshd, cron, ...) or add an enabled unit (repeatable)")
	f.StringArrayVar(&o.skipServices, "skip-service", nil, "leave a service out (name, unit or program; repeatable)")
	f.StringArrayVar(&o.mainServices, "main-service", nil, "the container ends when this service ends (repeatable)")
	f.BoolVar(&o.stopOnFailure, "stop-on-failure", false, "stop every service when one fails for good (default: the others keep running)")
	f.StringArrayVar(&o.volumes, "volume", nil, "move this VM directory's contents into a named volume (an archive beside -o) instead of the image (repeatable)")
	f.StringVar(&o.volumesMode, "volumes", "", "auto: move the data directories the fit assessment finds (PostgreSQL, MySQL, Redis, MongoDB, mail) into volumes")
	f.BoolVar(&o.requireServices, "require-services", false, "fail when no service to start is found")
	addPackageLayerFlags(f, &o)
	return cmd
}

func runConvert(ctx context.Context, o convertOptions, spec string, stdout, stderr io.Writer) error {
	opts, err := o.convertOptions(spec, stderr)
	if err != nil {
		closeProgress(opts.Progress)
		return err
	}
	rep, err := convert.Run(ctx, opts)
	closeProgress(opts.Progress)
	if rep != nil && o.report != "" {
		if _, werr := writeAtomic(o.report, nil, func(w io.Writer) (int64, error) {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return 0, enc.Encode(rep)
		}); werr != nil && err == nil {
			err = fmt.Errorf("writing the report: %w", werr)
		}
	}
	if err != nil {
		return asUsage(err)
	}
	printSummary(stdout, rep)
	printVolumes(stdout, rep)
	printWarnings(stderr, rep)
	return nil
}

// printWarnings says what the image holds or lacks that the operator must know before a push.
func printWarnings(w io.Writer, r *convert.Report) {
	w = termSafe(w) // paths of the VM's files
	if n := r.EnvLeftOutCount(); n > 0 {
		var names []string
		for _, e := range r.ServiceEnvLeftOut {
			names = append(names, e.Service+": "+strings.Join(e.Names, " "))
		}
		fmt.Fprintf(w, "warning: %d service environment variables left out of the image, they can hold secrets (%s); --keep-service-env keeps them all\n",
			n, strings.Join(names, "; "))
	}
	if len(r.SecretFiles) > 0 {
		var list []string
		for i, f := range r.SecretFiles {
			if i == 5 {
				list = append(list, fmt.Sprintf("and %d more, see the report", len(r.SecretFiles)-i))
				break
			}
			list = append(list, f.Path+" ("+f.Kind+")")
		}
		fmt.Fprintf(w, "warning: the image holds %d files with private keys or password hashes, a push publishes them: %s\n",
			len(r.SecretFiles), strings.Join(list, ", "))
	}
}

// convertOptions checks every flag and output path, before any work or connection, and turns
// them into the conversion's options.
func (o *convertOptions) convertOptions(spec string, stderr io.Writer) (convert.Options, error) {
	var opts convert.Options
	if err := o.sourceOptions.check(); err != nil {
		return opts, err
	}
	if err := o.progressOptions.check(); err != nil {
		return opts, err
	}
	if o.packageLayers == "" {
		o.packageLayers = string(convert.PackageLayersSingle)
	}
	var err error
	if opts.Volumes, opts.VolumesAuto, err = o.volumeOptions(); err != nil {
		return opts, err
	}
	if err := checkSourceSpec(spec); err != nil {
		return opts, err
	}
	for _, parse := range []func() error{
		func() (err error) { opts.Format, err = convert.ParseFormat(o.format); return },
		func() (err error) { opts.Builder, err = convert.ParseBuilder(o.builder); return },
		func() (err error) { opts.Strategy, err = convert.ParseStrategy(o.strategy); return },
		func() (err error) { opts.Transfer, err = convert.ParseTransfer(o.transfer); return },
		func() (err error) { opts.Compression, err = convert.ParseCompression(o.compression); return },
		func() (err error) { opts.PackageLayers, err = convert.ParsePackageLayers(o.packageLayers); return },
	} {
		if err := parse(); err != nil {
			return opts, asUsage(err)
		}
	}
	if o.output == "" && !o.load && o.push == "" {
		return opts, usage(errors.New("nothing to write: give -o FILE, --load or --push REF"))
	}
	for flag, p := range map[string]string{"-o": o.output, "--report": o.report} {
		if err := checkOutputDir(flag, p); err != nil {
			return opts, err
		}
	}
	if opts.SourceOptions, err = o.sourceOptions.options(); err != nil {
		return opts, err
	}
	d := o.display(stderr)
	opts.Progress, stderr = d, d.Log() // lines printed while the phases are drawn go above them
	opts.Source, opts.Output, opts.Tag, opts.Load, opts.Push, opts.Insecure = spec, o.output, o.tag, o.load, o.push, o.insecure
	opts.Base, opts.NoPackages, opts.Excludes, opts.WorkDir, opts.CacheDir = o.base, o.noPackages, o.excludes, o.workDir, o.cacheDir
	opts.Force, opts.NoContext, opts.ContextLayers = o.force, o.noContext, o.contextLayers
	opts.KeepServiceEnv, opts.InitBinary, opts.Notef = o.keepServiceEnv, os.Getenv(envInit), noteTo(stderr)
	opts.IncludeServices, opts.SkipServices, opts.MainServices = o.services, o.skipServices, o.mainServices
	opts.StopOnFailure, opts.RequireServices = o.stopOnFailure, o.requireServices
	if o.maxLayers != 0 && o.maxLayers < 10 {
		return opts, usage(fmt.Errorf("--max-layers %d: want at least 10", o.maxLayers))
	}
	opts.MaxLayers = o.maxLayers
	if opts.CacheRepo, err = checkCacheRepo(o.cacheRepo); err != nil {
		return opts, err
	}
	opts.Warnf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	if o.verbose {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, "  "+format+"\n", args...) }
	}
	if o.configFile != "" {
		if opts.Config, err = image.LoadConfig(o.configFile); err != nil {
			return opts, err
		}
		opts.Excludes = append(append([]string(nil), opts.Config.Excludes...), opts.Excludes...)
		if c := opts.Config.Compression; c != "" && !o.compressionSet {
			opts.Compression = c
		}
	}
	return opts, nil
}

func printSummary(w io.Writer, r *convert.Report) {
	w = termSafe(w) // the VM's and a registry cache entry's strings
	fmt.Fprintf(w, "converted %s (%s, %s) in %.1fs\n", r.Source, r.OS, r.Arch, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "  %s:\t%s\n", label, fmt.Sprintf(format, args...))
	}
	row("original filesystem", "%s in %d entries", units.IEC(r.OriginalBytes), r.OriginalEntries)
	row("base image", "%s (%s, %s compressed)", r.Base.Ref, r.Base.Transport, units.IEC(r.Base.Bytes))
	if p := r.Packages; p != nil {
		if p.Skipped != "" {
			row("packages layer", "none (%s)", p.Skipped)
		} else {
			hit := ""
			if p.CacheHit {
				hit = ", from the cache"
			}
			row("packages", "%d in the VM (%d roots, as inspect counts them), %d in the base", p.VM, p.VMRoots, p.Base)
			row("packages layer", "%d to install, named by %d roots; %s%s", p.RootsBefore, p.RootsAfter, units.IEC(p.LayerBytes), hit)
			if g := p.Grained; g != nil {
				row("package layers", "%d payloads with layers of their own, %d bundled, configuration %s", g.OwnLayers, g.Bundled, units.IEC(g.ConfigBytes))
				if len(g.NoArchive) > 0 {
					row("without a package file", "%s (their files are in the configuration layer)", strings.Join(g.NoArchive, " "))
				}
			}
			if p.Installer != "" {
				row("installed", "%s", p.Installer)
			}
			for _, e := range p.Errors {
				row("packages problem", "%s (the diff layer carries the files)", e)
			}
			if len(p.ConfigDropped) > 0 {
				fmt.Fprintf(w, "  warning: VM configuration not carried into the build: %s\n", strings.Join(p.ConfigDropped, ", "))
			}
			if len(p.Missing) > 0 {
				row("not in the repository", "%s (left to the diff layer)", strings.Join(p.Missing, " "))
			}
			if len(p.VersionDiffers) > 0 {
				var vs []string
				for _, c := range p.VersionDiffers {
					vs = append(vs, fmt.Sprintf("%s=%s (installed %s)", c.Name, c.VMVersion, c.BaseVersion))
				}
				row("VM's version not in the repository", "%s (the diff layer carries the VM's files)", strings.Join(vs, " "))
			}
		}
	}
	d := r.Diff
	row("vm diff ("+r.Strategy+")", "+%d (%s) M%d (%s) -%d (%s) m%d", d.Added, units.IEC(d.AddedBytes), d.Modified, units.IEC(d.ModifiedBytes), d.Deleted, units.IEC(d.DeletedBytes), d.Metadata)
	if r.DiffLayer != nil {
		row("diff layer", "%s uncompressed", units.IEC(r.DiffLayer.Bytes))
	}
	if hasWire(r.Source) {
		row("transferred", "%s over the wire (%s mode)", units.IEC(r.BytesTransferred), r.Transfer)
	}
	row("services", "%s (ports %s)", serviceList(r.ServiceSources), orNoneList(r.Ports))
	for _, s := range r.SkippedServices {
		row("skipped service", "%s: %s", s.Name, s.Reason)
	}
	if c := r.RegistryCache; c != nil {
		row("registry cache", "%s: %d hits, %d misses, %d stored, %d refused", c.Repo, c.Hits, c.Misses, c.Pushed, len(c.Refused))
	}
	row("image", "%s, %s compressed in %d layers", r.Image.Tag, units.IEC(r.Image.Bytes), len(r.Image.Layers))
	row("image ID", "%s (as docker images shows it)", r.Image.ID)
	row("manifest digest", "%s (as a registry shows it)", r.Image.Digest)
	if p := r.Image.Push; p != nil {
		row("pushed", "%s: %d layers uploaded (%s), %d mounted (%s), %d already there", r.Image.Pushed,
			p.LayersNew, units.IEC(p.BytesNew), p.LayersMounted, units.IEC(p.BytesMounted), p.LayersExisting)
	}
	if r.Image.Output != "" {
		row("written", "%s", r.Image.Output)
	}
	if len(r.Image.ContextFiles) > 0 {
		row("build context", "%s (docker build %s)", filepath.Dir(r.Image.ContextFiles[0]), filepath.Dir(r.Image.ContextFiles[0]))
	}
	for _, p := range r.Phases {
		row("phase "+p.Name, "%6.2fs", p.Seconds)
	}
	tw.Flush()
}

func orNoneList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// serviceList names each service with where its description came from: "nginx (unit)".
func serviceList(ss []convert.ServiceSource) string {
	if len(ss) == 0 {
		return "NONE"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.Name + " (" + s.Source + ")"
	}
	return strings.Join(parts, ", ")
}

// addPackageLayerFlags adds --package-layers and --max-layers.
func addPackageLayerFlags(f *pflag.FlagSet, o *convertOptions) {
	f.StringVar(&o.packageLayers, "package-layers", string(convert.PackageLayersSingle),
		"single (one packages layer) or grained (a layer per package payload, shared by every image with that package version, and a configuration layer)")
	f.IntVar(&o.maxLayers, "max-layers", convert.DefaultMaxLayers, "layers the image may have at most (grained package layers stay within it)")
	f.StringVar(&o.cacheRepo, "cache-repo", "", "registry repository (REGISTRY/REPO) shared as a layer cache by every converter: package layers are taken from it, built ones stored in it, and pushes mount its blobs (docs/registry-cache.md)")
}
