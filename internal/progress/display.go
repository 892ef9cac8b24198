package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Mode is how a Display shows progress.
type Mode int

// Modes.
const (
	Quiet Mode = iota // nothing
	Plain             // a line per phase start and end, and the figures every Interval
	Term              // one line per phase, redrawn in place (a terminal)
	JSON              // one Event a line
)

// Display shows phases, bytes and item counts in one Mode. Its methods are safe for concurrent
// use; Close draws the last state and stops the redraws.
type Display struct {
	mode     Mode
	w        io.Writer
	interval time.Duration
	tracker

	mu       sync.Mutex // guards what follows and writes to w
	lastLine time.Time
	lastDraw time.Time
	drawn    int // lines the terminal shows of ours
	stop     chan struct{}
	stopped  sync.WaitGroup
	closed   bool
}

// Interval is how often Plain mode prints figures, and Term mode redraws.
const (
	Interval     = 3 * time.Second
	termInterval = 200 * time.Millisecond
)

// New returns a Display writing to w in mode.
func New(w io.Writer, mode Mode) *Display {
	d := &Display{mode: mode, w: w, interval: Interval, stop: make(chan struct{})}
	d.tracker.now = time.Now
	if mode == Term {
		d.stopped.Add(1)
		go d.redrawLoop()
	}
	return d
}

func (d *Display) redrawLoop() {
	defer d.stopped.Done()
	t := time.NewTicker(termInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.mu.Lock()
			d.draw()
			d.mu.Unlock()
		}
	}
}

// Phase starts a phase.
func (d *Display) Phase(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.startPhase(name)
	switch d.mode {
	case Plain:
		fmt.Fprintf(d.w, "vm2image: %s...\n", name)
	case JSON:
		d.emit(Event{Event: "start", Phase: name, Time: p.start})
	case Term:
		d.draw()
	}
}

// Done ends a phase (err nil: it succeeded).
func (d *Display) Done(name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.endPhase(name, err)
	el := p.elapsed(p.end)
	switch d.mode {
	case Plain:
		if err != nil {
			fmt.Fprintf(d.w, "vm2image: %s failed after %s\n", name, Duration(el))
		} else {
			fmt.Fprintf(d.w, "vm2image: %s done in %s\n", name, Duration(el))
		}
	case JSON:
		if p.unsent {
			d.emitFigures(p)
		}
		ev := Event{Event: "done", Phase: name, Time: p.end, Seconds: el.Seconds()}
		if err != nil {
			ev.Event, ev.Error = "failed", err.Error()
		}
		d.emit(ev)
	case Term:
		d.draw()
	}
}

// Bytes reports done of total bytes moved within the phase (total <= 0: unknown).
func (d *Display) Bytes(name string, done, total int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.bytes(name, done, total)
	d.figuresChanged(p, func(now time.Time) Event {
		rate, eta := p.rate(now)
		ev := Event{Event: "bytes", Phase: name, Time: now, Done: done, Total: total, Rate: rate}
		if eta >= 0 {
			ev.ETA = eta
		}
		return ev
	})
}

// Items reports done of total things (packages fetched, configured) within the phase.
func (d *Display) Items(name, what string, done, total int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.items(name, what, done, total)
	d.figuresChanged(p, func(now time.Time) Event {
		return Event{Event: "items", Phase: name, Time: now, What: what, Done: int64(done), Total: int64(total)}
	})
}

// figuresChanged shows a phase's new figures: at once on a terminal (at most every redraw
// interval), every Interval in plain mode, and every half second as JSON.
func (d *Display) figuresChanged(p *phase, event func(time.Time) Event) {
	now := d.now()
	switch d.mode {
	case Plain:
		if now.Sub(d.lastLine) >= d.interval {
			d.lastLine = now
			fmt.Fprintf(d.w, "vm2image: %s: %s\n", p.name, p.figures(now))
		}
	case JSON:
		held := p.unsent // figures of another kind may wait too: send them all
		p.unsent = now.Sub(d.lastLine) < time.Second/2
		switch {
		case p.unsent:
		case held:
			d.lastLine = now
			d.emitFigures(p)
		default:
			d.lastLine = now
			d.emit(event(now))
		}
	case Term:
		if now.Sub(d.lastDraw) >= termInterval/2 {
			d.draw()
		}
	}
}

func (d *Display) emit(ev Event) { writeEvent(d.w, ev) }

// writeEvent writes ev as one JSON line.
func writeEvent(w io.Writer, ev Event) {
	b, err := json.Marshal(ev)
	if err == nil {
		w.Write(append(b, '\n'))
	}
}

// draw rewrites the lines of every phase in place: finished ones with their time, the running
// one with its figures. Called with d.mu held.
func (d *Display) draw() {
	if d.closed {
		return
	}
	now := d.now()
	d.lastDraw = now
	var b strings.Builder
	if d.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", d.drawn)
	}
	for _, p := range d.phases {
		b.WriteString("\r\x1b[2K")
		b.WriteString(termLine(p, now))
		b.WriteByte('\n')
	}
	d.drawn = len(d.phases)
	io.WriteString(d.w, b.String())
}

func termLine(p *phase, now time.Time) string {
	el := Duration(p.elapsed(now))
	switch {
	case p.ended && p.err != nil:
		return fmt.Sprintf("%-10s failed after %s", p.name, el)
	case p.ended:
		return fmt.Sprintf("%-10s done %s", p.name, el)
	}
	if f := p.figures(now); f != "" {
		return fmt.Sprintf("%-10s %s  %s", p.name, el, f)
	}
	return fmt.Sprintf("%-10s %s", p.name, el)
}

// Close draws the final state and stops redrawing. It is safe to call twice.
func (d *Display) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	if d.mode == Term {
		d.draw()
	}
	d.closed = true
	d.mu.Unlock()
	close(d.stop)
	d.stopped.Wait()
}

// Log returns a writer for the lines a command prints while the display runs (warnings,
// -v logs): on a terminal the phase lines are erased, the text written, and the phases drawn
// again below it, so the two never overwrite each other. Otherwise it writes through.
func (d *Display) Log() io.Writer { return logWriter{d} }

type logWriter struct{ d *Display }

func (l logWriter) Write(p []byte) (int, error) {
	d := l.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode != Term || d.closed {
		return d.w.Write(p)
	}
	if d.drawn > 0 {
		fmt.Fprintf(d.w, "\x1b[%dA\r\x1b[J", d.drawn)
		d.drawn = 0
	}
	n, err := d.w.Write(p)
	d.draw()
	return n, err
}

// emitFigures sends a phase's last bytes and items figures (the rate limit held them back).
func (d *Display) emitFigures(p *phase) {
	now := d.now()
	if p.hasBytes {
		rate, eta := p.rate(now)
		ev := Event{Event: "bytes", Phase: p.name, Time: now, Done: p.done, Total: p.total, Rate: rate}
		if eta >= 0 {
			ev.ETA = eta
		}
		d.emit(ev)
	}
	for _, it := range p.items {
		d.emit(Event{Event: "items", Phase: p.name, Time: now, What: it.what, Done: int64(it.done), Total: int64(it.total)})
	}
	p.unsent = false
}
