package progress

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vm2image/vm2image/internal/units"
)

// Event is one progress event, as --json-progress writes it (one JSON object a line).
type Event struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"` // start, bytes, items, done, failed
	Phase string    `json:"phase"`
	// Bytes: Done of Total bytes (Total -1 or absent when unknown), Rate in bytes a second and
	// ETA in seconds (absent until they can be known).
	Done  int64   `json:"done,omitempty"`
	Total int64   `json:"total,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
	ETA   float64 `json:"eta_seconds,omitempty"`
	// Items: What names the counted things ("fetched", "configured"), Done of Total.
	What string `json:"what,omitempty"`
	// Seconds is the phase's duration (done, failed); Error why it failed.
	Seconds float64 `json:"seconds,omitempty"`
	Error   string  `json:"error,omitempty"`
	// Text is a message event's line (commands that report in sentences: experiment).
	Text string `json:"text,omitempty"`
	// Fleets: VM names the VM an event is of. A "fleet" event gives the fleet's figures: Done
	// of Total VMs finished, Running VMs, Bytes moved by all, ETA; with VM and Status (done,
	// failed, skipped) when that VM just finished.
	VM      string `json:"vm,omitempty"`
	Status  string `json:"status,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	Running int    `json:"running,omitempty"`
}

// phase is what is known of one phase.
type phase struct {
	name        string
	start, end  time.Time
	ended       bool
	err         error
	done, total int64
	firstByte   time.Time
	firstDone   int64
	hasBytes    bool
	items       []itemCount
	unsent      bool // JSON: figures held back by the rate limit, sent before the phase ends
}

type itemCount struct {
	what        string
	done, total int
}

// tracker keeps the phases in order and computes rates and time left.
type tracker struct {
	mu     sync.Mutex
	now    func() time.Time
	phases []*phase
}

func (t *tracker) get(name string) *phase {
	for i := len(t.phases) - 1; i >= 0; i-- {
		if t.phases[i].name == name {
			return t.phases[i]
		}
	}
	p := &phase{name: name, start: t.now()}
	t.phases = append(t.phases, p)
	return p
}

func (t *tracker) startPhase(name string) *phase {
	p := &phase{name: name, start: t.now()}
	t.phases = append(t.phases, p)
	return p
}

func (t *tracker) endPhase(name string, err error) *phase {
	p := t.get(name)
	p.ended, p.end, p.err = true, t.now(), err
	return p
}

func (t *tracker) bytes(name string, done, total int64) *phase {
	p := t.get(name)
	if !p.hasBytes {
		p.hasBytes, p.firstByte, p.firstDone = true, p.start, 0
	}
	p.done, p.total = done, total
	return p
}

func (t *tracker) items(name, what string, done, total int) *phase {
	p := t.get(name)
	p.setItems(what, done, total)
	return p
}

func (p *phase) setItems(what string, done, total int) {
	for i := range p.items {
		if p.items[i].what == what {
			p.items[i].done, p.items[i].total = done, total
			return
		}
	}
	p.items = append(p.items, itemCount{what, done, total})
}

// rate is the phase's bytes a second since it began moving bytes, and the seconds left at that
// rate (-1 when unknown).
func (p *phase) rate(now time.Time) (rate, eta float64) {
	el := now.Sub(p.firstByte).Seconds()
	if !p.hasBytes || el <= 0 {
		return 0, -1
	}
	rate = float64(p.done-p.firstDone) / el
	if p.total <= 0 || rate <= 0 {
		return rate, -1
	}
	return rate, float64(max(p.total-p.done, 0)) / rate
}

func (p *phase) elapsed(now time.Time) time.Duration {
	if p.ended {
		return p.end.Sub(p.start)
	}
	return now.Sub(p.start)
}

// figures says how far a running phase is: "120.0 MiB of 320.0 MiB (37%), 45.2 MiB/s, 4s left;
// 12/40 fetched".
func (p *phase) figures(now time.Time) string {
	var parts []string
	if p.hasBytes {
		s := units.IEC(p.done)
		if p.total > 0 {
			s += fmt.Sprintf(" of %s (%d%%)", units.IEC(p.total), min(100, p.done*100/p.total))
		}
		rate, eta := p.rate(now)
		if rate > 0 {
			s += fmt.Sprintf(", %s/s", units.IEC(int64(rate)))
		}
		if eta >= 0 {
			s += ", " + Duration(time.Duration(eta*float64(time.Second))) + " left"
		}
		parts = append(parts, s)
	}
	for _, it := range p.items {
		if it.total > 0 {
			parts = append(parts, fmt.Sprintf("%d/%d %s", it.done, it.total, it.what))
		} else {
			parts = append(parts, fmt.Sprintf("%d %s", it.done, it.what))
		}
	}
	return strings.Join(parts, "; ")
}

// Duration prints d for people: "850ms", "4.2s", "3m05s", "1h02m".
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}
