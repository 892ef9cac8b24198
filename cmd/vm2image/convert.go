package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/image"
)

type convertOptions struct {
	sourceOptions
	output, format, tag, push, base, builder, strategy, transfer, compression string
	configFile, report, cacheDir                                              string
	load, noPackages, insecure                                                bool
	excludes                                                                  []string
	services, skipServices, mainServices                                      []string
	stopOnFailure, requireServices                                            bool
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
Dockerfile, services.yaml and compose.yaml. Outputs are written atomically.`,
		Example: `  vm2image convert 10.0.0.5:49153 --token-file token -o web.tar --tag web:converted
  vm2image convert 10.0.0.5:49153 --token-file token --load --report report.json
  vm2image convert dir:/srv/vm --base docker-daemon:debian:bookworm --format oci -o web.oci
  vm2image convert 10.0.0.5:49153 --token-file token --push registry.local:5000/web:1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConvert(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd.Flags())
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
	f.StringVar(&o.strategy, "strategy", "checksum", "diff strategy: rsync, checksum or rdiff")
	f.StringVar(&o.transfer, "transfer", "diff", "diff (only what the converter lacks) or full (the whole filesystem once)")
	f.StringArrayVar(&o.excludes, "exclude", nil, "anchored glob of VM paths to leave out (repeatable; added to the defaults)")
	f.StringVar(&o.compression, "compression", "gzip", "layer compression: gzip or zstd (Docker 20.10 cannot load zstd)")
	f.StringVar(&o.configFile, "config", "", "YAML config file (base image table, ...)")
	f.StringVar(&o.report, "report", "", "write the conversion report (JSON) here")
	f.StringVar(&o.cacheDir, "cache-dir", "", "packages layer cache (default /var/cache/vm2image/layers)")
	f.StringArrayVar(&o.services, "service", nil, "keep a service left out by default (sshd, cron, ...) or add an enabled unit (repeatable)")
	f.StringArrayVar(&o.skipServices, "skip-service", nil, "leave a service out (name, unit or program; repeatable)")
	f.StringArrayVar(&o.mainServices, "main-service", nil, "the container ends when this service ends (repeatable)")
	f.BoolVar(&o.stopOnFailure, "stop-on-failure", false, "stop every service when one fails for good (default: the others keep running)")
	f.BoolVar(&o.requireServices, "require-services", false, "fail when no service to start is found")
	return cmd
}

func runConvert(ctx context.Context, o convertOptions, spec string, stdout, stderr io.Writer) error {
	so, err := o.sourceOptions.options()
	if err != nil {
		return err
	}
	opts := convert.Options{
		Source: spec, SourceOptions: so, Output: o.output, Format: o.format, Tag: o.tag, Load: o.load,
		Push: o.push, Insecure: o.insecure, Base: o.base, NoPackages: o.noPackages, Builder: o.builder,
		Strategy: diff.Strategy(o.strategy), Transfer: o.transfer, Excludes: o.excludes,
		Compression: image.Compression(o.compression), WorkDir: o.workDir, CacheDir: o.cacheDir,
		Progress: newProgress(stderr), IncludeServices: o.services, SkipServices: o.skipServices,
		MainServices: o.mainServices, StopOnFailure: o.stopOnFailure, RequireServices: o.requireServices,
		Warnf: func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) },
	}
	if o.verbose {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, "  "+format+"\n", args...) }
	}
	if o.configFile != "" {
		if opts.Config, err = image.LoadConfig(o.configFile); err != nil {
			return err
		}
	}
	rep, err := convert.Run(ctx, opts)
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
		return err
	}
	printSummary(stdout, rep)
	return nil
}

func printSummary(w io.Writer, r *convert.Report) {
	fmt.Fprintf(w, "converted %s (%s, %s) in %.1fs\n", r.Source, r.OS, r.Arch, r.Seconds)
	fmt.Fprintf(w, "  original filesystem: %s in %d entries\n", mb(r.OriginalBytes), r.OriginalEntries)
	fmt.Fprintf(w, "  base image:          %s (%s, %s compressed)\n", r.Base.Ref, r.Base.Transport, mb(r.Base.Bytes))
	if p := r.Packages; p != nil {
		if p.Skipped != "" {
			fmt.Fprintf(w, "  packages layer:      none (%s)\n", p.Skipped)
		} else {
			hit := ""
			if p.CacheHit {
				hit = ", from the cache"
			}
			fmt.Fprintf(w, "  packages:            %d in the VM, %d in the base, install set %d -> %d roots; layer %s%s\n",
				p.VM, p.Base, p.RootsBefore, p.RootsAfter, mb(p.LayerBytes), hit)
			if len(p.Missing) > 0 {
				fmt.Fprintf(w, "  not in the repository (left to the diff layer): %s\n", strings.Join(p.Missing, " "))
			}
		}
	}
	d := r.Diff
	fmt.Fprintf(w, "  vm diff (%s):    +%d (%s) M%d (%s) -%d (%s) m%d\n", r.Strategy, d.Added, mb(d.AddedBytes), d.Modified, mb(d.ModifiedBytes), d.Deleted, mb(d.DeletedBytes), d.Metadata)
	if r.DiffLayer != nil {
		fmt.Fprintf(w, "  diff layer:          %s uncompressed\n", mb(r.DiffLayer.Bytes))
	}
	fmt.Fprintf(w, "  transferred:         %s over the wire (%s mode)\n", mb(r.BytesTransferred), r.Transfer)
	fmt.Fprintf(w, "  services:            %s (ports %s)\n", serviceList(r.ServiceSources), strings.Join(r.Ports, ", "))
	for _, s := range r.SkippedServices {
		fmt.Fprintf(w, "  skipped service:     %s: %s\n", s.Name, s.Reason)
	}
	fmt.Fprintf(w, "  image:               %s %s, %s compressed in %d layers\n", r.Image.Tag, r.Image.Digest, mb(r.Image.Bytes), len(r.Image.Layers))
	for _, p := range r.Phases {
		fmt.Fprintf(w, "  %-9s %6.2fs\n", p.Name, p.Seconds)
	}
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
