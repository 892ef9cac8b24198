package diff

import (
	"context"
	"fmt"
	"sync"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/wire"
)

const (
	batchLen     = 512 // entries per batch sent from a walk to the merge
	batchesAhead = 4   // batches a walk may run ahead of the merge
)

// selinuxXattr is the label Options.KeepSELinux keeps.
const selinuxXattr = "security.selinux"

// stream carries one tree's walk to the merge in batches of copied entries. The walk runs in
// its own goroutine (produce); the merge reads with head and next.
type stream struct {
	side  string // "old" or "new"
	ch    chan []fsmeta.Entry
	free  chan []fsmeta.Entry
	batch []fsmeta.Entry
	i     int
	done  bool

	// Set by produce; read once it has returned.
	entries, sockets int64
	bytes            int64 // regular files' sizes
	res              wire.TreeResult
}

func newStream(side string) *stream {
	return &stream{side: side, ch: make(chan []fsmeta.Entry, batchesAhead), free: make(chan []fsmeta.Entry, batchesAhead+2)}
}

// produce walks t and sends its entries, sockets left out, until the walk ends or ctx is done.
func (s *stream) produce(ctx context.Context, t Tree, args wire.TreeArgs, keepSELinux bool) error {
	defer close(s.ch)
	b := s.getBatch()
	res, err := t.Tree(ctx, args, func(e *fsmeta.Entry) error {
		s.entries++
		if e.Type == fsmeta.TypeRegular {
			s.bytes += e.Size
		}
		if e.Type == fsmeta.TypeSocket {
			s.sockets++
			return nil
		}
		b = append(b, *e)
		if !keepSELinux {
			dropXattr(&b[len(b)-1], selinuxXattr)
		}
		if len(b) < cap(b) {
			return nil
		}
		if err := s.send(ctx, b); err != nil {
			return err
		}
		b = s.getBatch()
		return nil
	})
	s.res = res
	if err != nil {
		return fmt.Errorf("walking the %s tree: %w", s.side, err)
	}
	if len(b) > 0 {
		return s.send(ctx, b)
	}
	return nil
}

func (s *stream) send(ctx context.Context, b []fsmeta.Entry) error {
	select {
	case s.ch <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stream) getBatch() []fsmeta.Entry {
	select {
	case b := <-s.free:
		return b[:0]
	default:
		return make([]fsmeta.Entry, 0, batchLen)
	}
}

// head returns the current entry, nil at the end of the tree. The entry stays valid until next.
func (s *stream) head(ctx context.Context) (*fsmeta.Entry, error) {
	for s.i >= len(s.batch) {
		if s.done {
			return nil, nil
		}
		if s.batch != nil {
			clear(s.batch) // drop references to paths and xattrs before reuse
			select {
			case s.free <- s.batch:
			default:
			}
			s.batch = nil
		}
		select {
		case b, ok := <-s.ch:
			if !ok {
				s.done = true
				return nil, nil
			}
			s.batch, s.i = b, 0
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &s.batch[s.i], nil
}

func (s *stream) next() { s.i++ }

// dropXattr removes one extended attribute from e without changing a map others may hold.
func dropXattr(e *fsmeta.Entry, name string) {
	if _, ok := e.Xattrs[name]; !ok {
		return
	}
	if len(e.Xattrs) == 1 {
		e.Xattrs = nil
		return
	}
	m := make(map[string][]byte, len(e.Xattrs)-1)
	for k, v := range e.Xattrs {
		if k != name {
			m[k] = v
		}
	}
	e.Xattrs = m
}

// group runs goroutines and keeps the first error, cancelling the others' context with it.
type group struct {
	wg     sync.WaitGroup
	once   sync.Once
	err    error
	cancel context.CancelFunc
}

func (g *group) Go(fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(); err != nil {
			g.fail(err)
		}
	}()
}

func (g *group) fail(err error) {
	g.once.Do(func() {
		g.err = err
		g.cancel()
	})
}

func (g *group) Wait() error {
	g.wg.Wait()
	return g.err
}
