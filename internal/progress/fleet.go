package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vm2image/vm2image/internal/units"
)

// Fleet shows the conversions of a fleet: per running VM its phase and that phase's figures,
// and the fleet's total (VMs finished of all, bytes moved, time left at the rate VMs have
// finished so far). On a terminal one line per running VM and a total line, redrawn; in plain
// mode those lines every Interval; in JSON mode the VMs' phase events with their name, and a
// "fleet" event when a VM finishes and every Interval. Its methods are safe for concurrent use.
type Fleet struct {
	mode     Mode
	w        io.Writer
	now      func() time.Time
	interval time.Duration

	mu                   sync.Mutex // guards what follows and writes to w
	start                time.Time
	total, done, skipped int
	moved                int64 // bytes of the phases that ended
	running              []*VM
	drawn                int
	closed               bool
	stop                 chan struct{}
	stopped              sync.WaitGroup
}

// VM is the progress of one VM's conversion: a convert.Progress (and ItemProgress).
type VM struct {
	f    *Fleet
	name string
	cur  *phase
	json time.Time // when its last figures were sent as JSON
}

// NewFleet returns a fleet display writing to w in mode.
func NewFleet(w io.Writer, mode Mode) *Fleet {
	f := newFleet(w, mode, time.Now)
	if mode != Quiet {
		every := Interval
		if mode == Term {
			every = termInterval
		}
		f.stopped.Add(1)
		go f.loop(every)
	}
	return f
}

func newFleet(w io.Writer, mode Mode, now func() time.Time) *Fleet {
	return &Fleet{mode: mode, w: w, now: now, interval: Interval, start: now(), stop: make(chan struct{})}
}

func (f *Fleet) loop(every time.Duration) {
	defer f.stopped.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			f.tick()
		}
	}
}

// tick shows the figures: redrawn on a terminal, as lines or a JSON event otherwise.
func (f *Fleet) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.total == 0 && len(f.running) == 0 { // nothing started yet
		return
	}
	switch f.mode {
	case Term:
		f.draw()
	case Plain:
		for _, l := range f.lines() {
			fmt.Fprintf(f.w, "fleet: %s\n", l)
		}
	case JSON:
		f.emitTotal("", "")
	}
}

// VM returns the progress of the VM name's conversion, shown from now on among the running.
func (f *Fleet) VM(name string) *VM {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := &VM{f: f, name: name}
	f.running = append(f.running, v)
	return v
}

// Finished records that a VM finished (status done, failed or skipped; skipped VMs do not count
// for the rate), done of total VMs having finished.
func (f *Fleet) Finished(name, status string, done, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done, f.total = done, total
	if status == "skipped" {
		f.skipped++
	}
	for i, v := range f.running {
		if v.name == name {
			if v.cur != nil && !v.cur.ended {
				f.moved += v.cur.done
			}
			f.running = append(f.running[:i], f.running[i+1:]...)
			break
		}
	}
	switch f.mode {
	case JSON:
		f.emitTotal(name, status)
	case Plain:
		if status != "skipped" { // --resume: the sentences say it
			fmt.Fprintf(f.w, "fleet: %s\n", f.totalLine(f.now()))
		}
	case Term:
		f.draw()
	}
}

// SetTotal sets the number of VMs before any finishes.
func (f *Fleet) SetTotal(total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total = total
}

// bytesMoved is what the ended phases moved and what the running ones have so far.
func (f *Fleet) bytesMoved() int64 {
	n := f.moved
	for _, v := range f.running {
		if v.cur != nil && !v.cur.ended {
			n += v.cur.done
		}
	}
	return n
}

// eta is the time left at the rate VMs converted so far finished (-1 until one has).
func (f *Fleet) eta(now time.Time) time.Duration {
	converted := f.done - f.skipped
	el := now.Sub(f.start)
	if converted <= 0 || el <= 0 || f.total <= f.done {
		return -1
	}
	per := el / time.Duration(converted)
	return per * time.Duration(f.total-f.done)
}

// totalLine: "1/3 VMs done, 2 running, 420.0 MiB moved, 2m05s left".
func (f *Fleet) totalLine(now time.Time) string {
	s := fmt.Sprintf("%d/%d VMs done, %d running, %s moved", f.done, f.total, len(f.running), units.IEC(f.bytesMoved()))
	if eta := f.eta(now); eta >= 0 {
		s += ", " + Duration(eta) + " left"
	}
	return s
}

// lines are a line per running VM ("vm1: diff 12.0s  120.0 MiB of 320.0 MiB (37%), ...") and
// the total line.
func (f *Fleet) lines() []string {
	now := f.now()
	var out []string
	for _, v := range f.running {
		s := v.name + ": starting"
		if p := v.cur; p != nil {
			s = fmt.Sprintf("%s: %s %s", v.name, p.name, Duration(p.elapsed(now)))
			if fig := p.figures(now); fig != "" && !p.ended {
				s += "  " + fig
			}
		}
		out = append(out, s)
	}
	return append(out, f.totalLine(now))
}

// draw rewrites the running VMs' lines and the total line in place. Called with f.mu held.
func (f *Fleet) draw() {
	if f.closed {
		return
	}
	var b strings.Builder
	if f.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\r\x1b[J", f.drawn)
	}
	lines := f.lines()
	for _, l := range lines {
		b.WriteString("\r\x1b[2K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	f.drawn = len(lines)
	io.WriteString(f.w, b.String())
}

func (f *Fleet) emit(ev Event) { writeEvent(f.w, ev) }

// emitTotal sends the fleet's figures as a "fleet" event (with the VM that just finished).
func (f *Fleet) emitTotal(vm, status string) {
	now := f.now()
	ev := Event{Event: "fleet", Phase: "fleet", Time: now, VM: vm, Status: status, Done: int64(f.done), Total: int64(f.total),
		Bytes: f.bytesMoved(), Running: len(f.running)}
	if eta := f.eta(now); eta >= 0 {
		ev.ETA = eta.Seconds()
	}
	f.emit(ev)
}

// Close draws the last state and stops. It is safe to call twice.
func (f *Fleet) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	switch f.mode {
	case Term:
		f.draw()
	case JSON:
		f.emitTotal("", "")
	}
	f.closed = true
	f.mu.Unlock()
	close(f.stop)
	f.stopped.Wait()
}

// Log returns a writer for the fleet's own lines: on a terminal the drawn lines are erased, the
// text written and the lines drawn again below it.
func (f *Fleet) Log() io.Writer { return fleetLog{f} }

type fleetLog struct{ f *Fleet }

func (l fleetLog) Write(p []byte) (int, error) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode != Term || f.closed {
		return f.w.Write(p)
	}
	if f.drawn > 0 {
		fmt.Fprintf(f.w, "\x1b[%dA\r\x1b[J", f.drawn)
		f.drawn = 0
	}
	n, err := f.w.Write(p)
	f.draw()
	return n, err
}

// Phase starts a phase of the VM's conversion.
func (v *VM) Phase(name string) {
	f := v.f
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if v.cur != nil && !v.cur.ended {
		f.moved += v.cur.done
	}
	v.cur = &phase{name: name, start: now}
	if f.mode == JSON {
		f.emit(Event{Event: "start", Phase: name, VM: v.name, Time: now})
	}
}

// Done ends a phase of the VM's conversion.
func (v *VM) Done(name string, err error) {
	f := v.f
	f.mu.Lock()
	defer f.mu.Unlock()
	p := v.cur
	if p == nil || p.name != name || p.ended {
		return
	}
	p.ended, p.end, p.err = true, f.now(), err
	f.moved += p.done
	if f.mode != JSON {
		return
	}
	if p.unsent {
		v.emitFigures(p)
	}
	ev := Event{Event: "done", Phase: name, VM: v.name, Time: p.end, Seconds: p.elapsed(p.end).Seconds()}
	if err != nil {
		ev.Event, ev.Error = "failed", err.Error()
	}
	f.emit(ev)
}

// Bytes reports done of total bytes moved within the VM's phase.
func (v *VM) Bytes(name string, done, total int64) {
	v.update(name, func(p *phase) {
		if !p.hasBytes {
			p.hasBytes, p.firstByte = true, p.start
		}
		p.done, p.total = done, total
	})
}

// Items reports done of total things within the VM's phase.
func (v *VM) Items(name, what string, done, total int) {
	v.update(name, func(p *phase) { p.setItems(what, done, total) })
}

func (v *VM) update(name string, set func(*phase)) {
	f := v.f
	f.mu.Lock()
	defer f.mu.Unlock()
	p := v.cur
	if p == nil || p.name != name || p.ended {
		return
	}
	set(p)
	if f.mode != JSON {
		return // shown by the ticks
	}
	now := f.now()
	p.unsent = now.Sub(v.json) < time.Second/2
	if !p.unsent {
		v.json = now
		v.emitFigures(p)
	}
}

// emitFigures sends the phase's bytes and items figures with the VM's name.
func (v *VM) emitFigures(p *phase) {
	now := v.f.now()
	if p.hasBytes {
		rate, eta := p.rate(now)
		ev := Event{Event: "bytes", Phase: p.name, VM: v.name, Time: now, Done: p.done, Total: p.total, Rate: rate}
		if eta >= 0 {
			ev.ETA = eta
		}
		v.f.emit(ev)
	}
	for _, it := range p.items {
		v.f.emit(Event{Event: "items", Phase: p.name, VM: v.name, Time: now, What: it.what, Done: int64(it.done), Total: int64(it.total)})
	}
	p.unsent = false
}
