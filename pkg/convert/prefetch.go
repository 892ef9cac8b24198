package convert

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/wire"
)

// The VM's side of the diff runs beside the package install (issue 13): when the packages
// layer is about to be built (not in the cache), the VM is walked (with the diff's excludes)
// and the agent hashes every regular file the diff may compare or the layer may need, in
// batches. The agent remembers
// digests by file state (fswalk.DigestMemo, for the agent's life), so when the diff walks the
// VM again and asks for digests, it answers from memory for every file unchanged since; a file
// changed in between is hashed again. The prefetch decides nothing: the diff, its digests and
// the layer are those of a conversion without it, only the hashing moves earlier.
//
// The prefetch is worth it only beside an install: when the packages layer comes from the
// cache (or there is none), the diff follows the packages phase at once, and a prefetch would
// only walk the VM twice. It is not started then; one started for a layer that another
// conversion built meanwhile (a cache hit after all) is stopped before the diff, which hashes
// whatever it did not reach (the agent remembers what it did).
//
// The two sides fail together: a prefetch that fails (the agent gone) cancels the conversion
// with its error as the cause, and a conversion that ends (a failed install, an error, a
// cancelled context) cancels the prefetch and waits for it, so nothing is left running.

// maxPrefetch bounds the files hashed ahead: about what the agent's memory holds.
const maxPrefetch = 90_000

// prefetchHook, for tests, runs first in the prefetch; its error is the prefetch's.
var prefetchHook func(ctx context.Context) error

// errPrefetch wraps the prefetch's failure, the cause of the conversion's cancellation.
var errPrefetch = errors.New("reading the VM beside the install")

type prefetch struct {
	// overlapped is set when a packages layer was built beside it: the diff waits for it.
	overlapped bool
	cancel     context.CancelFunc
	done       chan struct{}
	files      int64
	bytes      int64
	took       time.Duration
	err        error
}

// startPrefetch starts the prefetch, once, when the conversion hashes the VM's files
// (checksum or rdiff strategy, diff transfer).
func (r *run) startPrefetch(ctx context.Context) {
	if r.pre != nil || r.opts.noPrefetch || r.opts.Transfer == TransferFull || r.opts.Strategy == diff.Rsync {
		return
	}
	failConversion := r.fail
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetch{cancel: cancel, done: make(chan struct{})}
	r.pre = p
	go func() {
		defer close(p.done)
		start := time.Now()
		p.err = r.runPrefetch(ctx, p)
		p.took = time.Since(start)
		if p.err != nil && ctx.Err() == nil {
			failConversion(fmt.Errorf("%w: %w", errPrefetch, p.err))
		}
	}()
	r.cleanup = append(r.cleanup, func() error { p.cancel(); <-p.done; return nil })
}

// runPrefetch walks the VM and has the agent hash its regular files.
func (r *run) runPrefetch(ctx context.Context, p *prefetch) error {
	if prefetchHook != nil {
		if err := prefetchHook(ctx); err != nil {
			return err
		}
	}
	var paths []string
	_, err := r.src.Tree(ctx, wire.TreeArgs{Excludes: r.excludes()}, func(e *fsmeta.Entry) error {
		if e.Type == fsmeta.TypeRegular && e.Size > 0 && len(paths) < maxPrefetch {
			paths = append(paths, e.Path)
			p.bytes += e.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walking: %w", err)
	}
	for len(paths) > 0 {
		batch := paths[:min(hashBatch, len(paths))]
		paths = paths[len(batch):]
		if _, err := r.src.Hash(ctx, batch); err != nil {
			return fmt.Errorf("hashing: %w", err)
		}
		p.files += int64(len(batch))
	}
	return nil
}

// waitPrefetch waits for the prefetch before the diff (stops it when no install ran beside
// it); its failure has already cancelled the conversion.
func (r *run) waitPrefetch(ctx context.Context) error {
	p := r.pre
	if p == nil {
		return nil
	}
	start := time.Now()
	if !p.overlapped && !r.opts.prefetchAlways {
		p.cancel()
		<-p.done
		r.opts.Logf("VM hashing ahead stopped (no install to run beside): %d files hashed", p.files)
		return nil
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if p.err != nil {
		return fmt.Errorf("%w: %w", errPrefetch, p.err)
	}
	r.opts.Logf("VM hashed ahead: %d files, %d bytes in %s (the diff waited %s for it)", p.files, p.bytes,
		p.took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return nil
}
