package fleet

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/vm2image/vm2image/internal/units"
)

// WriteSummary prints the table that ends a run: per VM its status, time, bytes transferred,
// layers new and already in the registry, uploaded bytes and image size, then the totals.
func WriteSummary(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tSTATUS\tTIME\tTRANSFERRED\tLAYERS NEW\tMOUNTED\tLAYERS IN REGISTRY\tUPLOADED\tIMAGE\tBUILT/LOCAL/REGISTRY CACHE\t")
	var t Result
	var ok, failed, before int
	for _, r := range results {
		status := r.Status
		switch r.Status {
		case StatusOK:
			ok++
		case StatusSkipped:
			before++
		case StatusFailed:
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1fs\t%s\t%d\t%d\t%d\t%s\t%s\t%d/%d/%d\t\n", r.Name, status, r.Seconds, units.IEC(r.BytesTransferred),
			r.LayersNew, r.LayersMounted, r.LayersExisting, units.IEC(r.BytesUploaded), units.IEC(r.ImageBytes),
			r.LayersBuilt, r.LayersLocalCache, r.LayersRegistryCache)
		if r.Status == StatusSkipped {
			continue // counted by the run that made it
		}
		t.Seconds += r.Seconds
		t.BytesTransferred += r.BytesTransferred
		t.LayersNew += r.LayersNew
		t.LayersExisting += r.LayersExisting
		t.LayersMounted += r.LayersMounted
		t.LayersBuilt += r.LayersBuilt
		t.LayersLocalCache += r.LayersLocalCache
		t.LayersRegistryCache += r.LayersRegistryCache
		t.BytesUploaded += r.BytesUploaded
		t.ImageBytes += r.ImageBytes
	}
	fmt.Fprintf(tw, "total (this run)\t\t%.1fs\t%s\t%d\t%d\t%d\t%s\t%s\t%d/%d/%d\t\n", t.Seconds, units.IEC(t.BytesTransferred),
		t.LayersNew, t.LayersMounted, t.LayersExisting, units.IEC(t.BytesUploaded), units.IEC(t.ImageBytes),
		t.LayersBuilt, t.LayersLocalCache, t.LayersRegistryCache)
	tw.Flush()
	fmt.Fprintf(w, "%d converted, %d failed, %d done before (--resume)\n", ok, failed, before)
	for _, r := range results {
		if r.Status == StatusFailed {
			fmt.Fprintf(w, "  %s failed: %s\n", r.Name, r.Error)
		}
	}
}
