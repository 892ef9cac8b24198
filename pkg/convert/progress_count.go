package convert

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/layer"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// ItemProgress is the optional part of a Progress that hears counts of things within a phase:
// the packages phase's packages fetched and configured.
type ItemProgress interface {
	Items(name, what string, done, total int)
}

// Item counts of the packages phase.
const (
	ItemsFetched    = "fetched"
	ItemsConfigured = "configured"
)

func (r *run) items(name, what string, done, total int) {
	if ip, ok := r.opts.Progress.(ItemProgress); ok {
		ip.Items(name, what, done, total)
	}
}

// TarSize is the size of an uncompressed tar of entries: a header block per entry and the
// contents of regular files rounded up to blocks, plus the two end blocks (PAX headers for long
// names and xattrs are not counted: a progress total, not a promise).
func TarSize(entries int64, fileBytes []int64) int64 {
	n := int64(1024) + 512*entries
	for _, s := range fileBytes {
		n += (s + 511) &^ 511
	}
	return n
}

// ManifestTotal walks the VM's manifest (no contents move) and returns the size of the tar the
// whole filesystem makes: the total of a full transfer, known before it starts.
func ManifestTotal(ctx context.Context, src source.Source, excludes []string) int64 {
	var entries, bytes int64
	_, err := src.Tree(ctx, wire.TreeArgs{Excludes: excludes, NoXattrs: true}, func(e *fsmeta.Entry) error {
		entries++
		if e.Type == fsmeta.TypeRegular {
			bytes += (e.Size + 511) &^ 511
		}
		return nil
	})
	if err != nil {
		return -1
	}
	return TarSize(entries, nil) + bytes
}

// countingStream reports the bytes read from a tar stream to the phase's progress.
type countingStream struct {
	source.TarStream
	add func(int64)
}

func (c *countingStream) Read(p []byte) (int, error) {
	n, err := c.TarStream.Read(p)
	c.add(int64(n))
	return n, err
}

// byteCounter adds up bytes read across streams and reports them with the total. The total is
// an estimate (TarSize leaves out PAX headers): once the bytes pass it, it follows them, so
// the progress never shows more done than its total.
func (r *run) byteCounter(phase string, total int64) func(int64) {
	var done atomic.Int64
	return func(n int64) {
		if n > 0 {
			d, t := done.Add(n), total
			if t > 0 && d > t {
				t = d
			}
			r.opts.Progress.Bytes(phase, d, t)
		}
	}
}

// progressContent counts the bytes of the layer's content streams.
type progressContent struct {
	inner interface {
		layer.Content
		wire() int64
	}
	add func(int64)
}

func (p *progressContent) Files(ctx context.Context, args wire.TreeArgs) (source.TarStream, error) {
	ts, err := p.inner.Files(ctx, args)
	if err != nil {
		return nil, err
	}
	return &countingStream{TarStream: ts, add: p.add}, nil
}

func (p *progressContent) wire() int64 { return p.inner.wire() }

// aptCounter reads the package manager's output for the packages phase's counts: apt's
// "N newly installed" (the total), "Get:" lines (fetched) and dpkg's "Setting up" lines
// (configured). It is safe for concurrent use.
type aptCounter struct {
	mu                    sync.Mutex
	buf                   []byte
	total, fetched, setUp int
	inInstall             bool // a "newly installed" line was seen in this step
	report                func(what string, done, total int)
}

var newlyInstalled = regexp.MustCompile(`(?:^|, )(\d+) newly installed`)

func (a *aptCounter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf = append(a.buf, p...)
	for {
		i := bytes.IndexByte(a.buf, '\n')
		if i < 0 {
			break
		}
		a.line(a.buf[:i])
		a.buf = a.buf[i+1:]
	}
	if len(a.buf) > 64<<10 { // a line that never ends: drop it
		a.buf = a.buf[:0]
	}
	return len(p), nil
}

func (a *aptCounter) line(l []byte) {
	switch {
	case bytes.HasPrefix(l, []byte("+ ")): // the builder names each step: apt-get update's
		a.inInstall = false //                  "Get:" lines are indexes, not packages
	case bytes.HasPrefix(l, []byte("Get:")):
		if !a.inInstall {
			return
		}
		a.fetched++
		a.report(ItemsFetched, min(a.fetched, max(a.total, a.fetched)), a.total)
	case bytes.HasPrefix(l, []byte("Setting up ")):
		a.setUp++
		a.report(ItemsConfigured, a.setUp, a.total)
	default:
		if m := newlyInstalled.FindSubmatch(l); m != nil {
			a.inInstall = true
			if n, err := strconv.Atoi(string(m[1])); err == nil && n > a.total {
				a.total = n
				a.report(ItemsFetched, a.fetched, a.total)
			}
		}
	}
}

// layerContentTotal is the size of the contents the diff layer's streams carry.
func layerContentTotal(res *diff.Result) int64 {
	var entries int64
	var sizes []int64
	for i := range res.Changes {
		if n := res.Changes[i].New; n != nil && n.Type == fsmeta.TypeRegular && n.Size > 0 {
			entries++
			sizes = append(sizes, n.Size)
		}
	}
	return TarSize(entries, sizes)
}
