package diff

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/wire"
)

// minReplacedChildren is how many old entries a directory must have lost, all of them, for it
// to count as replaced (one opaque whiteout) rather than listing a whiteout per entry.
const minReplacedChildren = 2

// frame is a directory present in both trees whose contents the merge is inside of.
type frame struct {
	path     string
	old, new *fsmeta.Entry
	self     Kind // the directory's own change, if any
	// Direct children of the old directory, and how many of them are gone from the new one.
	oldChildren, deletedChildren int
	deletes                      []Change // held until the directory is closed: they may become one opaque
	needed                       bool     // a change lies below: a layer carries this directory
	keep                         bool     // something below is decided later: keep the entry for Parents
}

// merger walks both trees at once and collects the changes.
type merger struct {
	opts       Options
	oldT, newT Tree
	old, new   *stream
	frames     []*frame
	skip       skipping
	links      linkTracker
	work       *workQueue

	mu       sync.Mutex // guards what the work queue's goroutines update too
	changes  []Change
	stats    Stats
	problems []Problem
	dirs     map[string]*fsmeta.Entry // directories that may be parents of changes
	res      *Result
}

func newMerger(opts Options, old, new Tree) *merger {
	return &merger{opts: opts, oldT: old, newT: new, old: newStream("old"), new: newStream("new"),
		dirs: map[string]*fsmeta.Entry{}}
}

// run walks, merges and finishes the result.
func (m *merger) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := &group{cancel: cancel}
	args := wire.TreeArgs{Excludes: m.opts.Excludes}
	g.Go(func() error { return m.old.produce(ctx, m.oldT, args, m.opts.KeepSELinux) })
	g.Go(func() error { return m.new.produce(ctx, m.newT, args, m.opts.KeepSELinux) })
	m.work = newWorkQueue(m, g, ctx)
	if err := m.merge(ctx); err != nil {
		g.fail(err)
	}
	if err := m.work.close(ctx); err != nil {
		g.fail(err)
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := m.walkProblems(); err != nil {
		return err
	}
	m.finish()
	return nil
}

// merge pairs the two walks' entries by path and classifies each.
func (m *merger) merge(ctx context.Context) error {
	m.frames = []*frame{{path: "."}}
	for {
		o, err := m.old.head(ctx)
		if err != nil {
			return err
		}
		n, err := m.new.head(ctx)
		if err != nil {
			return err
		}
		c := 0
		switch {
		case o == nil && n == nil:
			m.endSkip()
			for len(m.frames) > 0 {
				m.popFrame()
			}
			return nil
		case o != nil && o.Path == ".":
			m.old.next() // the roots are not compared
			continue
		case n != nil && n.Path == ".":
			m.new.next()
			continue
		case o == nil:
			c = 1
		case n == nil:
			c = -1
		default:
			c = ComparePaths(o.Path, n.Path)
		}
		switch {
		case c < 0:
			if m.skipped(o) {
				m.old.next()
				continue
			}
			m.closeFrames(o.Path)
			m.onlyOld(o)
			m.old.next()
		case c > 0:
			m.closeFrames(n.Path)
			m.onlyNew(n)
			m.new.next()
		default:
			m.closeFrames(n.Path)
			if err := m.both(ctx, o, n); err != nil {
				return err
			}
			m.old.next()
			m.new.next()
		}
	}
}

func (m *merger) top() *frame { return m.frames[len(m.frames)-1] }

// skipping is an old directory that is gone (deleted, or now something else) while the merge
// counts its old contents into the change that removes it.
type skipping struct {
	active bool
	c      Change
	to     *frame // where a deletion goes once counted; nil: emitted
}

// skipped counts an old entry inside the directory being skipped.
func (m *merger) skipped(o *fsmeta.Entry) bool {
	if !m.skip.active {
		return false
	}
	if !isUnder(o.Path, m.skip.c.Path) {
		m.endSkip()
		return false
	}
	m.skip.c.gone++
	m.skip.c.goneBytes += fileSize(o)
	return true
}

// startSkip holds c until the old contents of the directory it removes are counted.
func (m *merger) startSkip(c Change, to *frame) { m.skip = skipping{active: true, c: c, to: to} }

func (m *merger) endSkip() {
	if !m.skip.active {
		return
	}
	if s := m.skip; s.to != nil {
		s.to.deletes = append(s.to.deletes, s.c)
	} else {
		m.emit(s.c)
	}
	m.skip = skipping{}
}

// closeFrames closes the directories p is not inside of, and ends a skip p is not inside of.
func (m *merger) closeFrames(p string) {
	if m.skip.active && !isUnder(p, m.skip.c.Path) {
		m.endSkip()
	}
	for len(m.frames) > 1 && !isUnder(p, m.top().path) {
		m.popFrame()
	}
}

// popFrame closes the innermost directory: its own change, its deletions or one opaque
// replacement, and whether a layer needs it as a parent.
func (m *merger) popFrame() {
	f := m.top()
	m.frames = m.frames[:len(m.frames)-1]
	replaced := f.path != "." && f.oldChildren >= minReplacedChildren && f.deletedChildren == f.oldChildren
	switch {
	case replaced:
		c := Change{Kind: DirReplaced, Path: f.path, Old: f.old, New: f.new}
		for _, d := range f.deletes {
			c.gone += d.gone
			c.goneBytes += d.goneBytes
		}
		m.emit(c)
	default:
		if f.self != "" {
			m.emit(Change{Kind: f.self, Path: f.path, Old: f.old, New: f.new})
		}
		for _, d := range f.deletes {
			m.emit(d)
		}
	}
	changed := replaced || f.self != ""
	if (f.needed || f.keep) && !changed && f.new != nil {
		m.mu.Lock()
		m.dirs[f.path] = f.new
		m.mu.Unlock()
	}
	if len(m.frames) > 0 {
		p := m.top()
		p.needed = p.needed || f.needed || changed
		p.keep = p.keep || f.keep
	}
}

// onlyOld handles a path of the old tree only (but not inside a deleted directory).
func (m *merger) onlyOld(o *fsmeta.Entry) {
	f := m.top()
	f.oldChildren++
	f.deletedChildren++
	f.needed = true
	c := Change{Kind: Deleted, Path: o.Path, Old: clone(o), gone: 1, goneBytes: fileSize(o)}
	if o.Type == fsmeta.TypeDir {
		m.startSkip(c, f)
		return
	}
	f.deletes = append(f.deletes, c)
}

// onlyNew handles a path of the new tree only.
func (m *merger) onlyNew(n *fsmeta.Entry) {
	f := m.top()
	f.needed = true
	e := clone(n)
	if m.links.record(nil, e) {
		f.keep = true
	}
	m.emit(Change{Kind: Added, Path: e.Path, New: e})
}

// both handles a path present in both trees.
func (m *merger) both(ctx context.Context, o, n *fsmeta.Entry) error {
	f := m.top()
	f.oldChildren++
	if o.Type != n.Type {
		f.needed = true
		e := clone(n)
		if m.links.record(nil, e) {
			f.keep = true
		}
		c := Change{Kind: TypeChanged, Path: e.Path, Old: clone(o), New: e, goneBytes: fileSize(o)}
		if o.Type == fsmeta.TypeDir {
			m.startSkip(c, nil)
			return nil
		}
		m.emit(c)
		return nil
	}
	if n.Type == fsmeta.TypeDir {
		m.frames = append(m.frames, &frame{path: n.Path, old: clone(o), new: clone(n), self: m.metaKind(o, n)})
		return nil
	}
	kind, undecided := m.compare(o, n)
	if kind == "" && !undecided && !m.links.tracks(o, n) {
		return nil // unchanged: nothing kept
	}
	oc, nc := clone(o), clone(n)
	if m.links.record(oc, nc) {
		f.keep = true
	}
	if undecided || m.wantsDelta(kind, oc, nc) {
		f.keep = true
		return m.work.add(ctx, job{old: oc, new: nc, kind: kind})
	}
	if kind != "" {
		f.needed = true
		m.emit(Change{Kind: kind, Path: nc.Path, Old: oc, New: nc})
	}
	return nil
}

// emit adds a change; the merge and the work queue both do.
func (m *merger) emit(c Change) {
	m.mu.Lock()
	m.changes = append(m.changes, c)
	m.mu.Unlock()
}

// report records a problem and says whether it ends the comparison.
func (m *merger) report(tree, path string, err error) error {
	m.mu.Lock()
	m.stats.Problems++
	if len(m.problems) < maxProblems {
		m.problems = append(m.problems, Problem{Path: path, Tree: tree, Err: err.Error()})
	}
	m.mu.Unlock()
	if m.opts.OnError != nil {
		if err := m.opts.OnError(path, err); err != nil {
			return err
		}
	}
	if m.opts.Strict {
		return fmt.Errorf("comparing %q (%s tree): %w: %w", path, tree, err, ErrStrict)
	}
	return nil
}

// walkProblems reports what the walks could not read.
func (m *merger) walkProblems() error {
	for _, s := range []*stream{m.old, m.new} {
		for _, p := range s.res.Problems {
			if err := m.report(s.side, p.Path, errors.New(p.Err)); err != nil {
				return err
			}
		}
		if extra := s.res.ProblemsTotal - len(s.res.Problems); extra > 0 {
			m.stats.Problems += int64(extra)
		}
	}
	return nil
}

func clone(e *fsmeta.Entry) *fsmeta.Entry {
	c := *e
	return &c
}

// fileSize is the content size of a regular file, 0 for anything else.
func fileSize(e *fsmeta.Entry) int64 {
	if e == nil || e.Type != fsmeta.TypeRegular {
		return 0
	}
	return e.Size
}
