package main

import (
	"io"
	"time"

	"github.com/vm2image/vm2image/internal/progress"
	"github.com/vm2image/vm2image/pkg/fleet"
)

// fleetDisplay returns the fleet's progress display on w (per running VM its phase and bytes,
// and the fleet's total: see docs/progress.md) and the writer the fleet's own lines go to.
func (o *fleetOptions) fleetDisplay(w io.Writer) (*progress.Fleet, io.Writer) {
	d := progress.NewFleet(w, o.mode(w))
	// The lines written there carry the VMs' conversions' words (a failed VM's error, their
	// warnings): no control character of theirs reaches the terminal.
	return d, termSafe(d.Log())
}

// fleetProgress feeds the display a fleet event (the total, and VMs that finished) and says it
// in a line, unless --quiet.
func (o *fleetOptions) fleetProgress(d *progress.Fleet, say func(string, ...any), e fleet.Event, since time.Duration) {
	if !o.quiet { // the sentence first, then the total line that follows from it
		fleetEvent(say, e, since)
	}
	switch e.Kind {
	case "start":
		d.SetTotal(e.Total)
	case "done", "failed", "skipped":
		d.Finished(e.VM, e.Kind, e.Done, e.Total)
	}
}
