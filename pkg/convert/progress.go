package convert

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vm2image/vm2image/internal/units"
)

// Progress hears about phases and bytes.
type Progress interface {
	Phase(name string)
	Done(name string, err error)
	// Bytes reports bytes moved so far within the phase (total -1 when unknown).
	Bytes(name string, done, total int64)
}

type nopProgress struct{}

func (nopProgress) Phase(string)               {}
func (nopProgress) Done(string, error)         {}
func (nopProgress) Bytes(string, int64, int64) {}

// LineProgress prints one plain line per phase (and a byte count every few seconds): for logs.
type LineProgress struct {
	W     io.Writer
	mu    sync.Mutex
	start map[string]time.Time
	last  time.Time
}

func (p *LineProgress) Phase(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start == nil {
		p.start = map[string]time.Time{}
	}
	p.start[name] = time.Now()
	fmt.Fprintf(p.W, "vm2image: %s...\n", name)
}

func (p *LineProgress) Done(name string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start[name]).Round(10 * time.Millisecond)
	if err != nil {
		fmt.Fprintf(p.W, "vm2image: %s failed after %s\n", name, el)
		return
	}
	fmt.Fprintf(p.W, "vm2image: %s done in %s\n", name, el)
}

func (p *LineProgress) Bytes(name string, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 3*time.Second {
		return
	}
	p.last = time.Now()
	if total > 0 {
		fmt.Fprintf(p.W, "vm2image: %s: %s of %s\n", name, units.IEC(done), units.IEC(total))
	} else {
		fmt.Fprintf(p.W, "vm2image: %s: %s\n", name, units.IEC(done))
	}
}
