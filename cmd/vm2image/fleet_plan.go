package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/vm2image/vm2image/internal/units"
	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/fleet"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

type fleetPlanOptions struct {
	sourceOptions
	base, cacheDir string
	maxLayers      int
	json           bool
	top            int
}

func newFleetPlanCmd() *cobra.Command {
	var o fleetPlanOptions
	cmd := &cobra.Command{
		Use:   "plan INVENTORY",
		Short: "Show how a fleet's package layers would be shared, without converting",
		Long: `Plan reads each VM's package list (through its source, as inspect does) and its base
image's, and shows the package-grained layer plan: the package payloads that get layers of their
own (those that save the registry most: size times the VMs that share them), each VM's layer
count within --max-layers, and the bytes a registry would store for the fleet's packages with
one packages layer per VM, one per distinct install set, and package-grained layers, beside the
floor (every distinct payload once). Sizes are the packages' installed sizes, uncompressed.

A VM's packages here are those it has that its base lacks (same name, version and
architecture).`,
		Example: `  vm2image fleet plan fleet.yaml
  vm2image fleet plan fleet.yaml --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFleetPlan(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	o.sourceOptions.AddFlags(f)
	f.StringVar(&o.base, "base", "auto", "base image: auto (from each VM's os-release) or a reference")
	f.IntVar(&o.maxLayers, "max-layers", fleet.DefaultMaxLayers, "layers an image may have at most")
	f.IntVar(&o.top, "top", 20, "shared layers to list (0: all)")
	f.BoolVar(&o.json, "json", false, "print the plan as JSON")
	addCacheDirFlag(f, &o.cacheDir)
	return cmd
}

func runFleetPlan(ctx context.Context, o fleetPlanOptions, invPath string, stdout, stderr io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	if o.maxLayers < 10 {
		return usage(fmt.Errorf("--max-layers %d: want at least 10", o.maxLayers))
	}
	inv, err := fleet.Load(invPath, nil)
	if err != nil {
		return usage(err)
	}
	vms := inv.Resolved()
	for _, vm := range vms {
		if err := checkSourceSpec(vm.Source); err != nil {
			return usage(fmt.Errorf("%s:%d: VM %q: %w", invPath, vm.Line, vm.Name, err))
		}
	}
	plan, err := o.plan(ctx, vms, stderr)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(plan)
	}
	printPlan(stdout, plan, o.top)
	return nil
}

// plan reads every VM's packages and its base's, and plans the fleet's package layers.
func (o *fleetPlanOptions) plan(ctx context.Context, vms []fleet.VM, stderr io.Writer) (fleet.LayerPlan, error) {
	bases := map[string]*pkgmgr.DB{}
	var images []fleet.ImagePackages
	reserved := 5 // a base layer, the bundle's, configuration, diff, runtime
	for _, vm := range vms {
		fmt.Fprintf(stderr, "plan: reading %s\n", vm.Name)
		// A VM that cannot be read is left out of the plan, not the fleet: its conversion
		// fails on its own and is recorded.
		vmDB, baseRef, arch, err := o.vmPackages(ctx, vm)
		if err != nil {
			fmt.Fprintf(stderr, "plan: %s left out of the plan: %v\n", vm.Name, err)
			continue
		}
		baseDB, ok := bases[baseRef]
		if !ok {
			fmt.Fprintf(stderr, "plan: reading the packages of base %s\n", baseRef)
			if baseDB, err = o.basePackages(ctx, baseRef, arch); err != nil {
				fmt.Fprintf(stderr, "plan: %s left out of the plan: base %s: %v\n", vm.Name, baseRef, err)
				continue
			}
			bases[baseRef] = baseDB
		}
		images = append(images, fleet.ImagePackages{Name: vm.Name, Packages: installSet(vmDB, baseDB)})
	}
	return fleet.PlanLayers(images, o.maxLayers, reserved), nil
}

// vmPackages reads a VM's package database and picks its base reference.
func (o *fleetPlanOptions) vmPackages(ctx context.Context, vm fleet.VM) (*pkgmgr.DB, string, string, error) {
	so := o.sourceOptions
	so.tokenFile, so.fingerprint = or(vm.TokenFile, so.tokenFile), or(vm.Fingerprint, so.fingerprint)
	src, err := so.open(ctx, vm.Source)
	if err != nil {
		return nil, "", "", err
	}
	defer src.Close()
	info, err := src.Info(ctx)
	if err != nil {
		return nil, "", "", fmt.Errorf("reading system information: %w", err)
	}
	db, err := src.Packages(ctx)
	if err != nil {
		return nil, "", "", fmt.Errorf("reading the package database: %w", err)
	}
	ref := or(vm.Base, o.base)
	if ref == "auto" {
		var ok bool
		if ref, ok = image.DefaultBases().Lookup(info.OS.ID, info.OS.VersionID); !ok {
			return nil, "", "", fmt.Errorf("no base image known for %s %s: give --base or base: in the inventory", info.OS.ID, info.OS.VersionID)
		}
	}
	return db, ref, info.Arch, nil
}

// basePackages resolves a base image and reads its package database from an unpacked copy.
func (o *fleetPlanOptions) basePackages(ctx context.Context, ref, arch string) (*pkgmgr.DB, error) {
	root := cache.RootOrDefault(o.cacheDir)
	store, err := root.Open(cache.Images, noteTo(io.Discard))
	if err != nil {
		return nil, err
	}
	base, err := image.Resolve(ctx, ref, image.ResolveOptions{CacheDir: store, Platform: v1.Platform{OS: "linux", Architecture: arch}})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(o.workDir, "vm2image-plan-base-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := image.Unpack(ctx, base.Image, dir); err != nil {
		return nil, fmt.Errorf("unpacking: %w", err)
	}
	return pkgmgr.Read(ctx, dir)
}

// installSet is what the VM has that the base lacks: same name, version and architecture.
func installSet(vm, base *pkgmgr.DB) map[fleet.PackageKey]int64 {
	have := map[fleet.PackageKey]bool{}
	for _, p := range base.Packages {
		have[fleet.PackageKey{Manager: base.Manager, Name: p.Name, Version: p.Version, Arch: p.Arch}] = true
	}
	out := map[fleet.PackageKey]int64{}
	for _, p := range vm.Packages {
		k := fleet.PackageKey{Manager: vm.Manager, Name: p.Name, Version: p.Version, Arch: p.Arch}
		if !have[k] {
			out[k] = p.InstalledSize
		}
	}
	return out
}

func printPlan(w io.Writer, p fleet.LayerPlan, top int) {
	shared := 0
	for _, l := range p.Own {
		if len(l.Images) > 1 {
			shared++
		}
	}
	fmt.Fprintf(w, "%d package payloads get layers of their own, %d of them shared by two VMs or more (at most %d layers an image)\n", len(p.Own), shared, p.MaxLayers)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tVERSION\tSIZE\tVMS\t")
	for i, l := range p.Own {
		if top > 0 && i == top {
			fmt.Fprintf(tw, "... %d more\t\t\t\t\n", len(p.Own)-i)
			break
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t\n", l.Package.Name, l.Package.Version, units.IEC(l.Bytes), len(l.Images))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tOWN LAYERS\tBUNDLED PACKAGES\tBUNDLE\tPACKAGE LAYERS\t")
	for _, im := range p.Images {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t\n", im.Name, im.OwnLayers, im.Bundled, units.IEC(im.BundleBytes), im.Layers)
	}
	tw.Flush()
	s := p.Stored
	ratio := func(a, b int64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", float64(a)/float64(b))
	}
	fmt.Fprintf(w, "\nregistry storage of the packages (uncompressed):\n")
	fmt.Fprintf(w, "  one layer per VM:          %s\n", units.IEC(s.PerImage))
	fmt.Fprintf(w, "  one per install set:       %s\n", units.IEC(s.PerInstallSet))
	fmt.Fprintf(w, "  package-grained:           %s (%s of per install set, %s of the floor)\n", units.IEC(s.PackageGrained), ratio(s.PackageGrained, s.PerInstallSet), ratio(s.PackageGrained, s.Floor))
	fmt.Fprintf(w, "  floor (each payload once): %s\n", units.IEC(s.Floor))
}
