package diff

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
)

// workers is how many batches of digests and deltas are computed at once.
const workers = 2

// job is a file present in both trees whose change is decided (or measured) off the merge:
// kind "" compares digests; Modified with Rdiff computes a delta.
type job struct {
	old, new *fsmeta.Entry
	kind     Kind
	skip     bool // a problem: the path is left as it is in the old tree
}

// workQueue batches jobs to a few goroutines, so hashing runs while the walks go on.
type workQueue struct {
	m     *merger
	in    chan []job
	batch []job
}

func newWorkQueue(m *merger, g *group, ctx context.Context) *workQueue {
	q := &workQueue{m: m, in: make(chan []job, workers)}
	for range workers {
		g.Go(func() error { return q.work(ctx) })
	}
	return q
}

func (q *workQueue) add(ctx context.Context, j job) error {
	q.batch = append(q.batch, j)
	if len(q.batch) < q.m.opts.HashBatch {
		return nil
	}
	return q.flush(ctx)
}

func (q *workQueue) flush(ctx context.Context) error {
	if len(q.batch) == 0 {
		return nil
	}
	select {
	case q.in <- q.batch:
		q.batch = nil
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close sends what is left and lets the workers end.
func (q *workQueue) close(ctx context.Context) error {
	err := q.flush(ctx)
	close(q.in)
	return err
}

func (q *workQueue) work(ctx context.Context) error {
	for b := range q.in {
		if err := q.do(ctx, b); err != nil {
			return err // the group cancels the merge, which then closes q.in
		}
	}
	return nil
}

// do decides a batch and emits its changes.
func (q *workQueue) do(ctx context.Context, b []job) error {
	if err := q.hash(ctx, b); err != nil {
		return err
	}
	for i := range b {
		j := &b[i]
		if j.skip || j.kind == "" {
			continue
		}
		c := Change{Kind: j.kind, Path: j.new.Path, Old: j.old, New: j.new}
		if q.m.wantsDelta(c.Kind, c.Old, c.New) {
			if err := q.m.delta(ctx, &c); err != nil {
				return err
			}
		}
		q.m.emit(c)
	}
	return nil
}

// hash compares the digests of the batch's undecided files, asking both trees at once.
func (q *workQueue) hash(ctx context.Context, b []job) error {
	var paths []string
	var idx []int
	for i := range b {
		if b[i].kind == "" {
			paths = append(paths, b[i].new.Path)
			idx = append(idx, i)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	var oldRes []fswalk.HashResult
	var oldErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		oldRes, oldErr = q.m.oldT.Hash(ctx, paths)
	}()
	newRes, newErr := q.m.newT.Hash(ctx, paths)
	wg.Wait()
	switch {
	case oldErr != nil:
		return fmt.Errorf("hashing files of the old tree: %w", oldErr)
	case newErr != nil:
		return fmt.Errorf("hashing files of the new tree: %w", newErr)
	case len(oldRes) != len(paths) || len(newRes) != len(paths):
		return fmt.Errorf("hashing files: asked for %d digests, got %d and %d", len(paths), len(oldRes), len(newRes))
	}
	for k, i := range idx {
		if err := q.decide(&b[i], oldRes[k], newRes[k]); err != nil {
			return err
		}
	}
	return nil
}

// decide sets a job's kind from the two digests of its file.
func (q *workQueue) decide(j *job, ho, hn fswalk.HashResult) error {
	switch {
	case hn.Err != "":
		j.skip = true
		return q.m.report("new", j.new.Path, errors.New(hn.Err))
	case hn.Size != j.new.Size: // changed since the walk: new contents in any case
		j.kind = Modified
		return nil
	}
	j.new.Digest = hn.Digest
	switch {
	case ho.Err != "":
		j.kind = Modified
		return q.m.report("old", j.new.Path, errors.New(ho.Err))
	case ho.Digest != hn.Digest || ho.Size != j.old.Size:
		j.kind = Modified
	default:
		j.old.Digest = ho.Digest
		j.kind = q.m.metaKind(j.old, j.new)
	}
	return nil
}
