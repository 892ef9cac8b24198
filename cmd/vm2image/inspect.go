package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/vm2image/vm2image/internal/units"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/fit"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

type inspectOptions struct {
	sourceOptions
	json       bool
	recommends bool
	fit        bool
}

func newInspectCmd() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect SOURCE",
		Short: "Show a VM's OS, architecture, packages and listening services",
		Long: `Inspect reads a VM through its agent (HOST:PORT or agent://HOST:PORT), a directory holding
a VM's root (dir:PATH) or a root-filesystem archive (tar:PATH[.gz|.zst]) and prints its OS,
architecture, package manager, package count, how many packages are roots of the dependency
graph (packages no other installed package depends on; Recommends are not counted as edges, as
in convert, which prints the same figure), and the processes that listen on the network.

Kernel, CPUs and memory are those of a running system: for dir: and tar: sources they are
unknown (the converter's own are not reported as the VM's).`,
		Example: `  vm2image inspect 10.0.0.5:49153 --token-file token --fingerprint SHA256:<the agent's second line>
  vm2image inspect dir:/srv/vm-root --json
  vm2image inspect tar:rootfs.tar.zst
  vm2image inspect dir:/srv/vm-root --fit`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd.Context(), o, args[0], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	cmd.Flags().BoolVar(&o.fit, "fit", false, "assess how the VM fits in a container: what comes along, what needs a decision, a verdict (docs/fit.md)")
	cmd.Flags().BoolVar(&o.recommends, "recommends", false, "count Recommends as edges when finding roots (convert does not)")
	return cmd
}

// InspectReport is what inspect prints with --json.
type InspectReport struct {
	Source         string           `json:"source"`
	Info           *wire.Info       `json:"info"`
	PackageManager pkgmgr.Manager   `json:"package_manager,omitempty"`
	PackageCount   int              `json:"package_count"`
	RootCount      int              `json:"root_count"`
	Roots          []string         `json:"roots,omitempty"`
	Packages       []pkgmgr.Package `json:"packages,omitempty"`
	PackagesError  string           `json:"packages_error,omitempty"`
	Services       []procs.Process  `json:"services"`
	// SystemUnknown says why kernel, CPUs and memory are not reported (a dir: or tar: source).
	SystemUnknown string `json:"system_unknown,omitempty"`
	// Start and Skipped are what a conversion with default flags would start and skip.
	Start   []convert.ServiceSource `json:"start,omitempty"`
	Skipped []convert.ServiceSource `json:"skipped,omitempty"`
	// Fit is the container-fit assessment (--fit; docs/fit.md).
	Fit *fit.Report `json:"fit,omitempty"`
}

func runInspect(ctx context.Context, o inspectOptions, spec string, out io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	if err := checkSourceSpec(spec); err != nil {
		return err
	}
	src, err := o.open(ctx, spec)
	if err != nil {
		return err
	}
	defer src.Close()
	rep, err := inspect(ctx, src, o.recommends)
	if err != nil {
		return err
	}
	if !hasWire(spec) {
		// The local reader answers with the converter's own kernel, CPUs and memory.
		info := *rep.Info
		info.Kernel, info.CPUs, info.MemoryBytes = "", 0, 0
		rep.Info = &info
		rep.SystemUnknown = "not a running system: " + strings.SplitN(spec, ":", 2)[0] + ": source"
	}
	if o.fit {
		if rep.Fit, err = inspectFit(ctx, src, rep); err != nil {
			return err
		}
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printInspect(out, rep)
	if rep.Fit != nil {
		printFit(out, rep.Fit)
	}
	return nil
}

func inspect(ctx context.Context, src source.Source, recommends bool) (*InspectReport, error) {
	info, err := src.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading system information: %w", err)
	}
	rep := &InspectReport{Source: src.String(), Info: info, Services: []procs.Process{}}
	db, err := src.Packages(ctx)
	if err != nil {
		// A VM without a package database is still worth inspecting.
		rep.PackagesError = err.Error()
	} else {
		rep.PackageManager = db.Manager
		rep.PackageCount = len(db.Packages)
		rep.Packages = db.Packages
		rep.Roots = pkgmgr.NewGraph(db, pkgmgr.GraphOptions{Recommends: recommends}).RootNames()
		rep.RootCount = len(rep.Roots)
	}
	ps, err := src.Processes(ctx, wire.ProcessArgs{ListeningOnly: true})
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	rep.Services = append(rep.Services, ps...)
	if cfg, err := convert.Services(ctx, src, convert.Options{}); err == nil {
		for _, s := range cfg.Services {
			rep.Start = append(rep.Start, convert.ServiceSource{Name: s.Name, Source: s.Source, Unit: s.Unit})
		}
		for _, s := range cfg.Skipped {
			rep.Skipped = append(rep.Skipped, convert.ServiceSource{Name: s.Name, Unit: s.Unit, Reason: s.Reason})
		}
	}
	return rep, nil
}

func printInspect(out io.Writer, r *InspectReport) {
	os := r.Info.OS
	name := os.PrettyName
	if name == "" {
		name = os.ID
	}
	fmt.Fprintf(out, "Source:    %s\n", r.Source)
	fmt.Fprintf(out, "OS:        %s (ID %s, version %s)\n", name, os.ID, orDash(os.VersionID))
	fmt.Fprintf(out, "Arch:      %s\n", r.Info.Arch)
	for _, p := range r.Info.Problems {
		fmt.Fprintf(out, "Warning:   %s not read: %s\n", p.Path, p.Err)
	}
	if r.Info.Hostname != "" {
		fmt.Fprintf(out, "Hostname:  %s\n", r.Info.Hostname)
	}
	if r.SystemUnknown != "" {
		fmt.Fprintf(out, "System:    kernel, CPUs and memory unknown (%s)\n", r.SystemUnknown)
	} else {
		fmt.Fprintf(out, "System:    kernel %s, %d CPUs, %s memory\n", orDash(r.Info.Kernel), r.Info.CPUs, units.IEC(r.Info.MemoryBytes))
	}
	if r.PackagesError != "" {
		fmt.Fprintf(out, "Packages:  none read (%s)\n", r.PackagesError)
	} else {
		fmt.Fprintf(out, "Packages:  %d installed (%s), %d roots of the dependency graph (as convert counts them)\n", r.PackageCount, r.PackageManager, r.RootCount)
	}
	printSelection(out, r)
	if len(r.Services) == 0 {
		fmt.Fprintln(out, "Services:  none listening")
		return
	}
	fmt.Fprintln(out, "Services:")
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  PID\tUSER\tLISTENING\tCOMMAND")
	for _, p := range r.Services {
		var ports []string
		for _, s := range p.Listening {
			ports = append(ports, fmt.Sprintf("%s %s", s.Proto, hostPort(s.Addr, s.Port)))
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", p.PID, p.User, strings.Join(ports, ", "), strings.Join(p.Argv, " "))
	}
	tw.Flush()
}

func hostPort(addr string, port int) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printSelection prints what a conversion would start and skip.
func printSelection(out io.Writer, r *InspectReport) {
	var start []string
	for _, s := range r.Start {
		start = append(start, s.Name+" ("+s.Source+")")
	}
	fmt.Fprintf(out, "Start:     %s\n", orDash(strings.Join(start, ", ")))
	for _, s := range r.Skipped {
		fmt.Fprintf(out, "Skipped:   %s: %s\n", s.Name, s.Reason)
	}
}
