package convert

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/vm2image/vm2image/pkg/delta"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Transfer in diff mode: the layer's file contents come from where they are cheapest. A file
// whose contents (by the agent's digest) the converter already holds in base+packages, under
// any path (moved or copied files too), is read locally; a large modified file whose old
// version is local comes as a block delta against it; everything else comes whole from the
// agent. Whatever the origin, the layer writer checks each file against the agent's digest.

// deltaMinSize is the smallest modified file fetched as a delta.
const deltaMinSize = 1 << 20

// hashBatch bounds one hash request.
const hashBatch = 2048

type origin struct {
	local string // a path in the local tree holding the same contents
	delta string // the old version's path in the local tree: fetch a delta against it
	size  int64
}

// localFirst is the layer's Content in diff transfer mode.
type localFirst struct {
	remote    source.Source
	localRoot string
	plan      map[string]origin
	localB    atomic.Int64
	deltaWire atomic.Int64
	streams   countingContent
}

// planContent asks the agent for the digests of the files the layer will hold, finds which of
// them the local tree already has, and plans deltas for large modified files.
func (r *run) planContent(ctx context.Context, res *diff.Result, remote source.Source, local diff.Tree) (*localFirst, error) {
	lf := &localFirst{remote: remote, localRoot: r.oldDir, plan: map[string]origin{}, streams: countingContent{src: remote}}
	var need []*fsmeta.Entry
	for i := range res.Changes {
		c := &res.Changes[i]
		if c.New != nil && c.New.Type == fsmeta.TypeRegular && c.New.Size > 0 {
			need = append(need, c.New)
		}
	}
	if err := r.fillDigests(ctx, remote, need); err != nil {
		return nil, err
	}
	index, err := localDigests(ctx, r.oldDir, need, local)
	if err != nil {
		return nil, err
	}
	for i := range res.Changes {
		c := &res.Changes[i]
		n := c.New
		if n == nil || n.Type != fsmeta.TypeRegular || n.Size == 0 {
			continue
		}
		if p, ok := index[n.Digest]; ok && n.Digest != "" {
			lf.plan[n.Path] = origin{local: p, size: n.Size}
		} else if c.Kind == diff.Modified && c.Old != nil && c.Old.Type == fsmeta.TypeRegular && n.Size >= deltaMinSize {
			lf.plan[n.Path] = origin{delta: c.Old.Path, size: n.Size}
		}
	}
	return lf, nil
}

// fillDigests asks the agent for the digests the diff did not compute.
func (r *run) fillDigests(ctx context.Context, remote source.Source, es []*fsmeta.Entry) error {
	var missing []*fsmeta.Entry
	for _, e := range es {
		if e.Digest == "" {
			missing = append(missing, e)
		}
	}
	for len(missing) > 0 {
		batch := missing[:min(hashBatch, len(missing))]
		missing = missing[len(batch):]
		paths := make([]string, len(batch))
		for i, e := range batch {
			paths[i] = e.Path
		}
		hs, err := remote.Hash(ctx, paths)
		if err != nil {
			return fmt.Errorf("asking the agent for digests: %w", err)
		}
		for i, h := range hs {
			if h.Err == "" && h.Size == batch[i].Size {
				batch[i].Digest = h.Digest
			}
		}
	}
	return nil
}

// localDigests hashes the local files whose size matches a needed file's and returns the first
// path holding each digest.
func localDigests(ctx context.Context, root string, need []*fsmeta.Entry, local diff.Tree) (map[string]string, error) {
	sizes := map[int64]bool{}
	for _, e := range need {
		sizes[e.Size] = true
	}
	var cands []string
	err := fswalk.Walk(ctx, root, fswalk.Options{TreatAsMounts: true}, func(e *fsmeta.Entry) error {
		if e.Type == fsmeta.TypeRegular && sizes[e.Size] {
			cands = append(cands, e.Path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("indexing local contents: %w", err)
	}
	index := map[string]string{}
	hs, err := local.Hash(ctx, cands)
	if err != nil {
		return nil, fmt.Errorf("indexing local contents: %w", err)
	}
	for _, h := range hs {
		if h.Err == "" {
			if _, ok := index[h.Digest]; !ok {
				index[h.Digest] = h.Path
			}
		}
	}
	return index, nil
}

// Files streams the requested files in order: local ones from disk, deltas patched locally,
// the rest from one request to the agent.
func (lf *localFirst) Files(ctx context.Context, args wire.TreeArgs) (source.TarStream, error) {
	var remote []string
	for _, p := range args.Paths {
		if _, ok := lf.plan[p]; !ok {
			remote = append(remote, p)
		}
	}
	var ts source.TarStream
	if len(remote) > 0 {
		a := args
		a.Paths = remote
		var err error
		if ts, err = lf.streams.Files(ctx, a); err != nil {
			return nil, err
		}
	}
	pr, pw := io.Pipe()
	s := &mergedStream{pr: pr, remote: ts, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		pw.CloseWithError(lf.merge(ctx, args.Paths, ts, pw))
	}()
	return s, nil
}

func (lf *localFirst) merge(ctx context.Context, paths []string, ts source.TarStream, w io.Writer) error {
	tw := tar.NewWriter(w)
	rs := &remoteEntries{}
	if ts != nil {
		rs.tr = tar.NewReader(ts)
	}
	for _, p := range paths {
		o, ok := lf.plan[p]
		if !ok {
			// The agent's next entry, when it is this path (a file that vanished is absent).
			if err := rs.copyIf(tw, p); err != nil {
				return err
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644, Size: o.size, Format: tar.FormatPAX}); err != nil {
			return err
		}
		var err error
		if o.local != "" {
			err = lf.copyLocal(tw, o)
		} else {
			err = lf.patch(ctx, tw, p, o)
		}
		if err != nil {
			return err
		}
	}
	if err := rs.rest(tw); err != nil { // whatever else the agent sent: the layer names it
		return err
	}
	return tw.Close()
}

// remoteEntries reads the agent's tar stream one entry ahead.
type remoteEntries struct {
	tr      *tar.Reader
	pending *tar.Header
	eof     bool
}

func (r *remoteEntries) peek() (*tar.Header, error) {
	if r.pending == nil && !r.eof && r.tr != nil {
		h, err := r.tr.Next()
		if err == io.EOF {
			r.eof = true
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		r.pending = h
	}
	return r.pending, nil
}

// copyIf copies the pending entry when it is named p.
func (r *remoteEntries) copyIf(tw *tar.Writer, p string) error {
	h, err := r.peek()
	if err != nil || h == nil || strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/") != p {
		return err
	}
	return r.copy(tw)
}

func (r *remoteEntries) copy(tw *tar.Writer) error {
	h := r.pending
	r.pending = nil
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := io.Copy(tw, r.tr)
	return err
}

func (r *remoteEntries) rest(tw *tar.Writer) error {
	for {
		h, err := r.peek()
		if err != nil || h == nil {
			return err
		}
		if err := r.copy(tw); err != nil {
			return err
		}
	}
}

func (lf *localFirst) copyLocal(w io.Writer, o origin) error {
	f, err := os.Open(filepath.Join(lf.localRoot, o.local))
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyN(w, f, o.size)
	lf.localB.Add(n)
	return err
}

// patch fetches a delta of the agent's file against the local old version and applies it.
func (lf *localFirst) patch(ctx context.Context, w io.Writer, p string, o origin) error {
	old, err := os.Open(filepath.Join(lf.localRoot, o.delta))
	if err != nil {
		return err
	}
	defer old.Close()
	st, err := old.Stat()
	if err != nil {
		return err
	}
	var sig bytes.Buffer
	bl := delta.BlockLenWithin(st.Size(), wire.MaxDeltaSignature)
	if bl == 0 {
		return fmt.Errorf("%s: too large for a delta", p)
	}
	if err := delta.Signature(ctx, old, &sig, bl); err != nil {
		return err
	}
	rc, err := lf.remote.Delta(ctx, p, sig.Bytes())
	if err != nil {
		return err
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	n, err := delta.Patch(ctx, old, cr, w, o.size)
	lf.deltaWire.Add(cr.n)
	if err == nil && n != o.size {
		err = fmt.Errorf("%s: the patched file has %d bytes, the agent's %d", p, n, o.size)
	}
	return err
}

// wire is what crossed the wire for the layer's contents.
func (lf *localFirst) wire() int64 { return lf.streams.wire() + lf.deltaWire.Load() }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// mergedStream is the TarStream Files returns.
type mergedStream struct {
	pr     *io.PipeReader
	remote source.TarStream
	done   chan struct{}
}

func (s *mergedStream) Read(p []byte) (int, error) { return s.pr.Read(p) }

func (s *mergedStream) Close() error {
	s.pr.CloseWithError(io.ErrClosedPipe)
	<-s.done
	if s.remote != nil {
		return s.remote.Close()
	}
	return nil
}

func (s *mergedStream) Result() wire.TreeResult {
	if s.remote != nil {
		return s.remote.Result()
	}
	return wire.TreeResult{}
}

func (s *mergedStream) WireBytes() int64 {
	if s.remote != nil {
		return s.remote.WireBytes()
	}
	return 0
}
