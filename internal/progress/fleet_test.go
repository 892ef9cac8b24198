package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func newFakeFleet(mode Mode) (*Fleet, *bytes.Buffer, *fakeClock) {
	var buf bytes.Buffer
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return newFleet(&buf, mode, c.now), &buf, c
}

// fleetScript runs two VMs of three: vm1 moves bytes and finishes after 60s, vm2 counts
// packages; a tick comes between.
func fleetScript(f *Fleet, c *fakeClock) {
	f.SetTotal(3)
	v1, v2 := f.VM("vm1"), f.VM("vm2")
	v1.Phase("diff")
	v2.Phase("packages")
	c.t = c.t.Add(10 * time.Second)
	v1.Bytes("diff", 100<<20, 400<<20)
	v2.Items("packages", "configured", 3, 12)
	f.tick()
	c.t = c.t.Add(50 * time.Second)
	v1.Bytes("diff", 400<<20, 400<<20)
	v1.Done("diff", nil)
	f.Finished("vm1", "done", 1, 3)
	v2.Done("packages", errors.New("broken"))
	f.Finished("vm2", "failed", 2, 3)
}

// TestFleetPlain: each tick prints a line per running VM with its phase's figures and the
// fleet's total line; a VM's end prints the total line with the time left at the rate VMs
// finished (one VM in 60s: 2m for the two left; two in 60s: 30s for the last).
func TestFleetPlain(t *testing.T) {
	f, buf, c := newFakeFleet(Plain)
	fleetScript(f, c)
	want := []string{
		"fleet: vm1: diff 10.0s  100.0 MiB of 400.0 MiB (25%), 10.0 MiB/s, 30.0s left",
		"fleet: vm2: packages 10.0s  3/12 configured",
		"fleet: 0/3 VMs done, 2 running, 100.0 MiB moved",
		"fleet: 1/3 VMs done, 1 running, 400.0 MiB moved, 2m00s left",
		"fleet: 2/3 VMs done, 0 running, 400.0 MiB moved, 30.0s left",
	}
	if got := strings.TrimSpace(buf.String()); got != strings.Join(want, "\n") {
		t.Errorf("plain lines:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// TestFleetJSON: the VMs' phase events carry their names; a VM's end is a fleet event with the
// VM, its status and the fleet's figures.
func TestFleetJSON(t *testing.T) {
	f, buf, c := newFakeFleet(JSON)
	fleetScript(f, c)
	var evs []Event
	sc := bufio.NewScanner(buf)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	find := func(event, vm, phase string) *Event {
		for i := range evs {
			if evs[i].Event == event && evs[i].VM == vm && evs[i].Phase == phase {
				return &evs[i]
			}
		}
		t.Fatalf("no %s event of %s %s in\n%s", event, vm, phase, buf)
		return nil
	}
	find("start", "vm1", "diff")
	if e := find("bytes", "vm1", "diff"); e.Done != 100<<20 || e.Total != 400<<20 || e.Rate != 10<<20 || e.ETA != 30 {
		t.Errorf("bytes event %+v", e)
	}
	if e := find("items", "vm2", "packages"); e.What != "configured" || e.Done != 3 || e.Total != 12 {
		t.Errorf("items event %+v", e)
	}
	find("failed", "vm2", "packages")
	if e := find("fleet", "vm1", "fleet"); e.Status != "done" || e.Done != 1 || e.Total != 3 || e.Bytes != 400<<20 || e.ETA != 120 || e.Running != 1 {
		t.Errorf("fleet event at vm1's end %+v", e)
	}
	if e := find("fleet", "", "fleet"); e.Done != 0 || e.Total != 3 || e.Bytes != 100<<20 || e.Running != 2 {
		t.Errorf("fleet event of the tick %+v", e)
	}
}

// TestFleetTerm: on a terminal the running VMs' lines and the total line are redrawn in place;
// a finished VM's line goes away.
func TestFleetTerm(t *testing.T) {
	f, buf, c := newFakeFleet(Term)
	fleetScript(f, c)
	frames := strings.Split(buf.String(), "\x1b[J")
	first, last := frames[0], frames[len(frames)-1]
	for _, want := range []string{"\r\x1b[2Kvm1: diff 10.0s  100.0 MiB of 400.0 MiB (25%)", "\r\x1b[2Kvm2: packages 10.0s  3/12 configured", "0/3 VMs done, 2 running"} {
		if !strings.Contains(first, want) {
			t.Errorf("first frame %q lacks %q", first, want)
		}
	}
	if strings.Contains(last, "vm1") || !strings.Contains(last, "2/3 VMs done, 0 running, 400.0 MiB moved, 30.0s left") {
		t.Errorf("last frame %q", last)
	}
}
