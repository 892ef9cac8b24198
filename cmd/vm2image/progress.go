package main

import (
	"io"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"github.com/vm2image/vm2image/pkg/convert"
	"golang.org/x/sys/unix"
)

// newProgress shows progress bars on a terminal and plain lines otherwise (logs, pipes).
func newProgress(w io.Writer) convert.Progress {
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return &barProgress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40)), bars: map[string]*mpb.Bar{}, bytes: map[string]*mpb.Bar{}}
	}
	return &convert.LineProgress{W: w}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// barProgress draws a spinner per phase with its elapsed time, and a byte bar for the phases
// that report bytes (downloads, pushes).
type barProgress struct {
	mu    sync.Mutex
	p     *mpb.Progress
	bars  map[string]*mpb.Bar
	bytes map[string]*mpb.Bar
}

func (b *barProgress) Phase(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bars[name] = b.p.AddSpinner(1,
		mpb.PrependDecorators(decor.Name(name, decor.WC{W: 10, C: decor.DindentRight})),
		mpb.AppendDecorators(decor.OnComplete(decor.Elapsed(decor.ET_STYLE_GO), "done")))
}

func (b *barProgress) Done(name string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bar := b.bars[name]; bar != nil {
		if err != nil {
			bar.Abort(false)
		} else {
			bar.SetCurrent(1)
		}
	}
	if bar := b.bytes[name]; bar != nil && !bar.Completed() {
		bar.Abort(false)
	}
	if name == convert.PhaseAssemble || err != nil {
		b.p.Wait()
	}
}

func (b *barProgress) Bytes(name string, done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bar := b.bytes[name]
	if bar == nil {
		bar = b.p.AddBar(total, mpb.PrependDecorators(decor.Name("  "+name+" bytes", decor.WC{W: 16, C: decor.DindentRight})),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")))
		b.bytes[name] = bar
	}
	if total > 0 {
		bar.SetTotal(total, false)
	}
	bar.SetCurrent(done)
	if total > 0 && done >= total {
		bar.SetTotal(total, true)
	}
}
