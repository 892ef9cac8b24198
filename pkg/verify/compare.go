package verify

import (
	"context"
	"fmt"
	"strings"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// vmBatch and vmBuffered bound how far the VM's walk runs ahead of the comparison, which starts
// once the image is flattened: at most vmBuffered batches of vmBatch entries wait.
const (
	vmBatch    = 512
	vmBuffered = 64
)

// maxProblemNotes bounds the source's per-path problems copied into the notes.
const maxProblemNotes = 20

// comparison holds one run of Image.
type comparison struct {
	src   source.Source
	excl  []string
	opts  Options
	r     *Report
	ex    *matcher
	stage *stager
	count *counter // nil without Options.Progress
}

func newComparison(src source.Source, excl []string, opts Options, r *Report) (*comparison, error) {
	ex, err := newMatcher(excl)
	if err != nil {
		return nil, err
	}
	c := &comparison{src: src, excl: excl, opts: opts, r: r, ex: ex, count: newCounter(opts.Progress)}
	if !opts.NoPackages {
		if c.stage, err = newStager(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *comparison) close() { c.stage.close() }

// vmResult is what the goroutines reading the source deliver.
type vmResult struct {
	tree  wire.TreeResult
	err   error
	db    *pkgmgr.DB
	dbErr error
}

// run walks the VM (and reads its packages) while the image is flattened, then merges the walk
// with the flattened tree.
func (c *comparison) run(ctx context.Context, img imageSource) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []fsmeta.Entry, vmBuffered)
	treeDone := make(chan vmResult, 1)
	go c.walkVM(ctx, batches, treeDone)
	pkgsDone := make(chan vmResult, 1)
	go func() {
		if c.opts.NoPackages {
			pkgsDone <- vmResult{}
			return
		}
		db, err := c.src.Packages(ctx)
		pkgsDone <- vmResult{db: db, dbErr: err}
	}()

	f := newFlattener(c.stage)
	f.count = c.count
	if err := img.flatten(ctx, f); err != nil {
		cancel()
		for range batches {
		}
		<-treeDone
		<-pkgsDone
		return err
	}
	c.r.ImageEntries = f.t.entries
	m := newMerger(c, f.t)
	for batch := range batches {
		for i := range batch {
			m.vm(&batch[i])
		}
	}
	m.finish()
	res := <-treeDone
	pk := <-pkgsDone
	if res.err != nil {
		return fmt.Errorf("walking the source's tree: %w", res.err)
	}
	c.problems(res.tree)
	if !c.opts.NoPackages {
		if pk.dbErr != nil && ctx.Err() != nil {
			return fmt.Errorf("reading the source's packages: %w", pk.dbErr)
		}
		root, err := c.stage.finish(f.t)
		if err != nil {
			return err
		}
		comparePackages(ctx, pk.db, pk.dbErr, root, c.r)
	}
	return nil
}

// walkVM streams the source's tree, with digests and xattrs, in batches.
func (c *comparison) walkVM(ctx context.Context, out chan<- []fsmeta.Entry, done chan<- vmResult) {
	defer close(out)
	batch := make([]fsmeta.Entry, 0, vmBatch)
	res, err := c.src.Tree(ctx, wire.TreeArgs{Excludes: c.excl, Digest: true}, func(e *fsmeta.Entry) error {
		c.count.vmEntry(e)
		batch = append(batch, *e)
		if len(batch) == vmBatch {
			select {
			case out <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([]fsmeta.Entry, 0, vmBatch)
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		select {
		case out <- batch:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	done <- vmResult{tree: res, err: err}
}

// problems notes the paths the source could not read: their digests are unknown.
func (c *comparison) problems(res wire.TreeResult) {
	for i, p := range res.Problems {
		if i == maxProblemNotes {
			break
		}
		c.r.note("source: %s: %s", p.Path, p.Err)
	}
	if res.ProblemsTotal > maxProblemNotes {
		c.r.note("source: %d problems in all", res.ProblemsTotal)
	}
}

// fixedMounts are the directories under the root that a VM's agent lists as mount points.
var fixedMounts = map[string]bool{"dev": true, "proc": true, "sys": true, "run": true}

type devIno struct{ dev, ino uint64 }

type dirDev struct {
	path string
	dev  uint64
}

// merger walks the VM's entries and the image's iterator together, in walk order.
type merger struct {
	c  *comparison
	r  *Report
	it *imageIter

	dirs    []dirDev      // the VM directories above the current entry, with their devices
	pending *fsmeta.Entry // a directory on another device than its parent: a mount point unless entries below it follow

	skip      string // VM entries below this directory are counted, not compared
	skipIdx   int    // the difference that counts them, -1 if none was kept
	skipCount int

	vmLinks map[devIno]string // first compared name of each VM inode with several links
	sockets int
}

func newMerger(c *comparison, t *tree) *merger {
	return &merger{c: c, r: c.r, it: newImageIter(t, c.ex), skipIdx: -1, vmLinks: map[devIno]string{}}
}

// vm takes the VM's next entry in walk order. e is only valid during the call.
func (m *merger) vm(e *fsmeta.Entry) {
	if e.Path == "." {
		m.dirs = append(m.dirs[:0], dirDev{".", e.Dev})
		return
	}
	m.r.VMEntries++
	if p := m.pending; p != nil {
		m.pending = nil
		m.entry(p, !isUnder(e.Path, p.Path))
	}
	for len(m.dirs) > 1 && !isUnder(e.Path, m.dirs[len(m.dirs)-1].path) {
		m.dirs = m.dirs[:len(m.dirs)-1]
	}
	parentDev := e.Dev
	if len(m.dirs) > 0 {
		parentDev = m.dirs[len(m.dirs)-1].dev
	}
	if e.Type == fsmeta.TypeDir {
		m.dirs = append(m.dirs, dirDev{e.Path, e.Dev})
	}
	if m.skip != "" {
		if isUnder(e.Path, m.skip) {
			m.skipCount++
			return
		}
		m.endSkip()
	}
	switch {
	case e.Type == fsmeta.TypeSocket:
		m.sockets++
	case e.Type == fsmeta.TypeDir && !fixedMounts[e.Path] && e.Dev != parentDev:
		cp := *e
		m.pending = &cp
	default:
		m.entry(e, e.Type == fsmeta.TypeDir && fixedMounts[e.Path])
	}
}

// finish ends the walk: what the image still holds is extra.
func (m *merger) finish() {
	if p := m.pending; p != nil {
		m.pending = nil
		m.entry(p, true)
	}
	m.endSkip()
	for m.it.ok {
		m.extra()
	}
	if m.sockets > 0 {
		m.r.note("%d sockets in the VM not compared (tar cannot hold them; services recreate them)", m.sockets)
	}
}

// entry compares one VM entry with the image's entry of the same path, if any. The contents of
// a mount point are not compared: its existence and type are.
func (m *merger) entry(e *fsmeta.Entry, mount bool) {
	for m.it.ok && diff.ComparePaths(m.it.path, e.Path) < 0 {
		m.extra()
	}
	if !m.it.ok || m.it.path != e.Path {
		m.missing(e)
		return
	}
	n := m.it.n
	switch {
	case e.Type != n.typ:
		m.add(KindType, e.Path, e.Type.String(), n.typ.String())
		if e.Type == fsmeta.TypeDir {
			m.startSkip(e.Path)
		}
		m.skipImage()
		return
	case mount:
		m.startSkip(e.Path)
		m.skipImage()
		return
	}
	m.compare(e, n)
	m.it.next(true)
}

// extra reports the image's current entry, and counts what is below it, as not in the VM.
func (m *merger) extra() {
	n := m.it.n
	m.add(KindExtra, m.it.path, "", describeNode(n, count(n)-1))
	m.it.next(false)
}

// skipImage moves past the image's current entry and its contents.
func (m *merger) skipImage() { m.it.next(false) }

func (m *merger) missing(e *fsmeta.Entry) {
	m.add(KindMissing, e.Path, describeEntry(e), "")
	if e.Type == fsmeta.TypeDir {
		m.startSkip(e.Path)
	}
}

func (m *merger) add(k Kind, p, vm, img string) {
	m.r.add(Difference{Kind: k, Path: p, VM: vm, Image: img})
}

// startSkip counts the VM's entries below dir into the last difference instead of comparing them.
func (m *merger) startSkip(dir string) {
	m.skip, m.skipCount, m.skipIdx = dir, 0, -1
	if n := len(m.r.Differences); n > 0 && m.r.Differences[n-1].Path == dir {
		m.skipIdx = n - 1
	}
}

func (m *merger) endSkip() {
	if m.skip != "" && m.skipIdx >= 0 && m.skipCount > 0 {
		m.r.Differences[m.skipIdx].VM += belowText(int64(m.skipCount))
	}
	m.skip, m.skipCount, m.skipIdx = "", 0, -1
}

// isUnder reports whether p lies strictly below the directory dir.
func isUnder(p, dir string) bool {
	return len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}
