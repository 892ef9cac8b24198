package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/fleet"
)

type fleetOptions struct {
	convertOptions        // the fleet's shared conversion flags
	jobs           int    // conversions at once
	stateDir       string // results, reports
	outputDir      string // NAME.tar per VM
	resume         bool
	index          int // convert only this VM (-1: all; default from $JOB_COMPLETION_INDEX)
}

func newFleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Convert many VMs from an inventory",
		Long: `Fleet converts the VMs an inventory (YAML) names, a few at a time on this machine with one
shared cache, and ends with a summary table. See "vm2image fleet convert --help".`,
	}
	cmd.AddCommand(newFleetConvertCmd(), newFleetPlanCmd(), newFleetK8sCmd())
	return cmd
}

func newFleetConvertCmd() *cobra.Command {
	var o fleetOptions
	cmd := &cobra.Command{
		Use:   "convert INVENTORY",
		Short: "Convert every VM of an inventory, N at a time",
		Long: `Fleet convert converts every VM of INVENTORY, --jobs at a time, with the flags of "convert"
as the fleet's settings and the inventory's defaults and per-VM entries over them. Each image goes
to --push REPOSITORY as REPOSITORY:NAME (or the VM's tag:), and/or to --output-dir DIR as NAME.tar.
Images pushed to one repository share its blobs: a layer the repository holds is not uploaded
again, and the summary says, per VM, how many layers were new and how many were there already.

Each VM's result (NAME.json) and conversion report (NAME.report.json) are written atomically to
--state DIR (default: INVENTORY's name with .state). A VM that fails is recorded and the others go
on; --resume skips the VMs a previous run converted, so a run killed midway finishes the rest.

The inventory:

  defaults:              # every VM starts from these (all optional)
    token_file: /etc/vm2image/fleet.token
    base: auto
    no_packages: false
    excludes: [/srv/cache/*]
    skip_services: [cron]
    cache_repo: registry.local:5000/vm2image-cache   # or --cache-repo
  vms:
    - name: web1         # lower-case; names the state files and the image tag
      source: 10.0.0.5:49153
      fingerprint: SHA256:...
    - name: db1
      source: dir:/srv/vm/db1
      tag: registry.local:5000/db:1
      services: [postgresql]

Unknown keys, duplicate names and bad sources are errors that name the line.`,
		Example: `  vm2image fleet convert fleet.yaml --push registry.local:5000/fleet --jobs 2
  vm2image fleet convert fleet.yaml --push registry.local:5000/fleet --resume
  vm2image fleet convert fleet.yaml --output-dir images/ --base docker-daemon:debian:bookworm`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.compressionSet = cmd.Flags().Changed("compression")
			return runFleetConvert(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	o.sourceOptions.AddFlags(f)
	o.progressOptions.AddFlags(f)
	f.IntVarP(&o.jobs, "jobs", "j", 2, "conversions at once")
	f.StringVar(&o.stateDir, "state", "", "directory for each VM's result and report (default INVENTORY.state)")
	f.StringVar(&o.outputDir, "output-dir", "", "write each image as NAME.tar (a docker-archive) in this directory")
	f.BoolVar(&o.resume, "resume", false, "skip the VMs a previous run with this state directory converted")
	f.IntVar(&o.index, "index", -1, "convert only the VM at this index of the inventory (0-based; default $"+envJobIndex+" when set: a worker of an Indexed Job)")
	f.StringVar(&o.push, "push", "", "push each image to this repository as REPOSITORY:NAME")
	f.BoolVar(&o.insecure, "insecure", false, "talk plain http to the registry")
	f.StringVar(&o.base, "base", "auto", "base image: auto (from each VM's os-release) or a reference")
	f.BoolVar(&o.noPackages, "no-packages", false, "do not reinstall the VMs' packages in a layer of their own")
	f.StringVar(&o.builder, "builder", "chroot", "where packages are installed: chroot or docker")
	f.StringVar(&o.strategy, "strategy", string(convert.DefaultStrategy), "diff strategy: rsync, checksum or rdiff")
	f.StringVar(&o.transfer, "transfer", "diff", "diff (only what the converter lacks) or full (the whole filesystem once)")
	f.StringArrayVar(&o.excludes, "exclude", nil, "anchored glob of VM paths to leave out (repeatable; added to the defaults)")
	f.StringVar(&o.compression, "compression", "gzip", "layer compression: gzip or zstd")
	f.StringVar(&o.configFile, "config", "", "YAML config file (base image table, ...)")
	f.BoolVar(&o.force, "force", false, "replace existing NAME.tar files in --output-dir")
	addCacheDirFlag(f, &o.cacheDir)
	addPackageLayerFlags(f, &o.convertOptions)
	f.Lookup("package-layers").DefValue = string(convert.PackageLayersGrained)
	o.packageLayers = string(convert.PackageLayersGrained)
	return cmd
}

func runFleetConvert(ctx context.Context, o fleetOptions, invPath string, stdout, stderr io.Writer) error {
	if o.jobs < 1 {
		return usage(fmt.Errorf("--jobs %d: want 1 or more", o.jobs))
	}
	if err := o.progressOptions.check(); err != nil {
		return err
	}
	if o.push == "" && o.outputDir == "" {
		return usage(errors.New("nothing to write: give --push REPOSITORY or --output-dir DIR"))
	}
	if o.push != "" && strings.ContainsAny(o.push, "@") {
		return usage(fmt.Errorf("--push %s: want a repository; each VM's name becomes its tag", o.push))
	}
	inv, err := fleet.Load(invPath, nil)
	if err != nil {
		return usage(err)
	}
	if o.index < 0 {
		if v, ok := os.LookupEnv(envJobIndex); ok {
			if o.index, err = strconv.Atoi(v); err != nil {
				return usage(fmt.Errorf("$%s=%q: not an index", envJobIndex, v))
			}
		}
	}
	if o.index >= 0 {
		if inv, err = inv.Only(o.index); err != nil {
			return usage(err)
		}
	}
	for _, vm := range inv.Resolved() { // sources made absolute against the inventory's directory
		if err := checkSourceSpec(vm.Source); err != nil {
			return usage(fmt.Errorf("%s:%d: VM %q: %w", invPath, vm.Line, vm.Name, err))
		}
	}
	if o.outputDir != "" {
		if err := os.MkdirAll(o.outputDir, 0o755); err != nil {
			return fmt.Errorf("creating --output-dir: %w", err)
		}
	}
	if o.stateDir == "" {
		o.stateDir = strings.TrimSuffix(invPath, filepath.Ext(invPath)) + ".state"
	}
	// Every VM's options are checked before the first conversion starts.
	for _, vm := range inv.Resolved() {
		if _, err := o.vmOptions(vm, io.Discard); err != nil {
			return fmt.Errorf("VM %s (line %d): %w", vm.Name, vm.Line, err)
		}
	}
	// Package-grained layers: the fleet's plan says which payloads get layers of their own,
	// the same in every image that holds them.
	var own map[string]map[string]bool
	if o.packageLayers == string(convert.PackageLayersGrained) {
		po := fleetPlanOptions{sourceOptions: o.sourceOptions, base: o.base, cacheDir: o.cacheDir, maxLayers: o.maxLayers}
		if po.maxLayers == 0 {
			po.maxLayers = convert.DefaultMaxLayers
		}
		plan, err := po.plan(ctx, inv.Resolved(), stderr)
		if err != nil {
			return err
		}
		own = ownPackages(plan)
	}
	display, stderr := o.fleetDisplay(stderr)
	defer display.Close()
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "fleet: "+format+"\n", args...)
	}
	start := time.Now()
	results, err := fleet.Run(ctx, inv, fleet.Options{
		Jobs: o.jobs, StateDir: o.stateDir, Resume: o.resume, Settings: o.settings(),
		Convert: func(ctx context.Context, vm fleet.VM) (*convert.Report, error) {
			opts, err := o.vmOptions(vm, &prefixWriter{say: say, prefix: vm.Name + ": "})
			if err != nil {
				return nil, err
			}
			opts.OwnPackages, opts.Progress = own[vm.Name], display.VM(vm.Name)
			return convert.Run(ctx, opts)
		},
		Event: func(e fleet.Event) { o.fleetProgress(display, say, e, time.Since(start)) },
	})
	display.Close()
	if results != nil {
		fmt.Fprintln(stdout)
		fleet.WriteSummary(stdout, results)
		fmt.Fprintf(stdout, "wall time %.1fs with %d jobs; results in %s\n", time.Since(start).Seconds(), o.jobs, o.stateDir)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if r.Status == fleet.StatusFailed {
			failed++
		}
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d VMs failed (see the summary)", failed, len(results))}
	}
	return nil
}

func fleetEvent(say func(string, ...any), e fleet.Event, since time.Duration) {
	switch e.Kind {
	case "start":
		say("%s: converting", e.VM)
	case "skipped":
		say("%s: converted by an earlier run (%s), skipped [%d/%d]", e.VM, e.Result.Finished.Format(time.RFC3339), e.Done, e.Total)
	case "done":
		r := e.Result
		say("%s: done in %.1fs, %d layers new, %d mounted, %d already there; %d built, %d from the local cache, %d from the registry cache [%d/%d, %s]",
			e.VM, r.Seconds, r.LayersNew, r.LayersMounted, r.LayersExisting, r.LayersBuilt, r.LayersLocalCache, r.LayersRegistryCache, e.Done, e.Total, since.Round(time.Second))
	case "failed":
		say("%s: FAILED after %.1fs: %s [%d/%d]", e.VM, e.Result.Seconds, e.Result.Error, e.Done, e.Total)
	}
}

// vmOptions are the conversion options of one VM: the fleet's flags, then the inventory.
func (o *fleetOptions) vmOptions(vm fleet.VM, log io.Writer) (convert.Options, error) {
	c := o.convertOptions
	c.tokenFile, c.fingerprint = or(vm.TokenFile, c.tokenFile), or(vm.Fingerprint, c.fingerprint)
	c.base = or(vm.Base, c.base)
	c.cacheRepo = or(vm.CacheRepo, c.cacheRepo)
	if vm.NoPackages != nil {
		c.noPackages = *vm.NoPackages
	}
	c.excludes = append(append([]string(nil), c.excludes...), vm.Excludes...)
	c.services, c.skipServices = vm.Services, vm.SkipService
	c.tag, c.push, c.output = vm.Tag, "", ""
	if o.push != "" {
		c.push = o.push + ":" + vm.Name
		if vm.Tag != "" {
			c.push = vm.Tag
		}
		if c.tag == "" {
			c.tag = c.push
		}
	}
	if o.outputDir != "" {
		c.output, c.noContext = filepath.Join(o.outputDir, vm.Name+".tar"), true
	}
	opts, err := c.convertOptions(vm.Source, log)
	if err != nil {
		return opts, err
	}
	opts.Progress = nil // the fleet's display instead, see fleet_progress.go
	return opts, nil
}

// settings are the fleet's flags that decide what each VM's image is and where it goes:
// --resume converts a VM again when they changed since it was converted.
func (o *fleetOptions) settings() string {
	c := o.convertOptions
	return fmt.Sprintf("push %q output-dir %q base %q builder %q strategy %q transfer %q compression %q format %q "+
		"no-packages %v excludes %q package-layers %q max-layers %d volumes %q %q keep-service-env %v services %q %q %q",
		o.push, o.outputDir, c.base, c.builder, c.strategy, c.transfer, c.compression, c.format,
		c.noPackages, c.excludes, c.packageLayers, c.maxLayers, c.volumes, c.volumesMode, c.keepServiceEnv,
		c.services, c.skipServices, c.mainServices)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// prefixWriter says each line written to it through say, after prefix.
type prefixWriter struct {
	say    func(string, ...any)
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.say("%s%s", w.prefix, line)
	}
	return len(p), nil
}

// ownPackages turns a plan into each VM's OwnPackages ("name version arch").
func ownPackages(plan fleet.LayerPlan) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, l := range plan.Own {
		for _, vm := range l.Images {
			if out[vm] == nil {
				out[vm] = map[string]bool{}
			}
			out[vm][l.Package.Name+" "+l.Package.Version+" "+l.Package.Arch] = true
		}
	}
	return out
}
