package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vm2image/vm2image/internal/units"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/fit"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/source"
)

// inspectFit assesses the VM's fit in a container, with the services a default conversion
// would start.
func inspectFit(ctx context.Context, src source.Source, rep *InspectReport) (*fit.Report, error) {
	cfg, err := convert.Services(ctx, src, convert.Options{})
	if err != nil {
		return nil, err
	}
	return fit.Analyze(ctx, src, fit.Input{Services: cfg, Processes: rep.Services, Hostname: rep.Info.Hostname, Excludes: image.DefaultExcludes})
}

// printFit prints the fit report: the verdict, what comes along, then each finding with its
// reason and suggestion, decisions first.
func printFit(out io.Writer, r *fit.Report) {
	fmt.Fprintf(out, "\nFit:       %s\n", r.Verdict)
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Comes along:\n  SERVICE\tSTARTS FROM\tUSER\tPORTS")
	for _, s := range r.Services {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Name, s.Start+" "+orDash(s.Unit), s.User, orDash(strings.Join(s.Ports, ", ")))
	}
	tw.Flush()
	for _, sev := range []string{fit.Decision, fit.Note} {
		for _, f := range r.Findings {
			if f.Severity != sev {
				continue
			}
			size := ""
			if f.Bytes > 0 {
				size = " (" + units.IEC(f.Bytes) + ")"
			}
			fmt.Fprintf(out, "%-9s  %s: %s%s\n", strings.ToUpper(sev), f.Kind, f.Subject, size)
			if f.Where != "" {
				fmt.Fprintf(out, "             in %s\n", f.Where)
			}
			fmt.Fprintf(out, "             why: %s\n             do:  %s\n", f.Reason, f.Suggestion)
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintf(out, "Not read:   %s\n", p)
	}
}
