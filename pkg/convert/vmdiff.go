package convert

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/layer"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

func (r *run) excludes() []string {
	return append(append([]string(nil), image.DefaultExcludes...), r.opts.Excludes...)
}

func (r *run) vmDiff(ctx context.Context) error {
	if err := r.waitPrefetch(ctx); err != nil {
		return err
	}
	newTree, err := r.newTree(ctx)
	if err != nil {
		return err
	}
	old, err := r.openDigestTree(r.oldDir, r.oldKey)
	if err != nil {
		return err
	}
	defer old.Close()
	defer old.save()
	res, err := diff.Trees(ctx, old, newTree, diff.Options{Strategy: r.opts.Strategy, Excludes: r.excludes()})
	if err != nil {
		return fmt.Errorf("comparing the VM with base+packages: %w", err)
	}
	r.report.Diff, r.report.Problems = res.Stats, res.Problems
	r.opts.Logf("diff: %d digests of base+packages files taken from the cache's index", old.hits.Load())
	// The journal's "original filesystem" figures: the VM tree after excludes, from the walk.
	r.report.OriginalEntries, r.report.OriginalBytes = res.Stats.NewEntries, res.Stats.NewBytes
	var content interface {
		layer.Content
		wire() int64
	} = &countingContent{src: newTree}
	var local *localFirst
	if r.opts.Transfer == TransferDiff {
		if local, err = r.planContent(ctx, res, newTree, old); err != nil {
			return err
		}
		content = local
	}
	content = &progressContent{inner: content, add: r.byteCounter(PhaseDiff, layerContentTotal(res))}
	path := filepath.Join(r.work, "vm.layer.tar")
	ls, diffID, err := r.writeDiffLayer(ctx, path, res, content)
	if err != nil {
		return fmt.Errorf("writing the VM's diff layer: %w", err)
	}
	r.report.DiffLayer = &ls
	r.report.Problems = append(r.report.Problems, ls.Problems...)
	r.report.BytesTransferred += content.wire()
	if local != nil {
		r.report.LocalContentBytes = local.localB.Load()
	}
	r.scanSecrets(path, "vm-diff")
	r.layers = append(r.layers, image.LayerFile{Path: path, Comment: "vm2image: vm diff", DiffID: diffID})
	r.roles = append(r.roles, "vm-diff")
	return nil
}

// writeDiffLayer writes the layer of res to path and compresses it for the image while it is
// written (into the blob directory assembleAndWrite gives Assemble, which then finds it by the
// diffID returned).
func (r *run) writeDiffLayer(ctx context.Context, path string, res *diff.Result, content layer.Content) (layer.LayerStats, v1.Hash, error) {
	f, err := os.Create(path)
	if err != nil {
		return layer.LayerStats{}, v1.Hash{}, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	pr, pw := io.Pipe()
	type compressed struct {
		diffID v1.Hash
		err    error
	}
	zc := make(chan compressed, 1)
	go func() {
		d, err := image.CompressInto(ctx, filepath.Join(r.work, "blobs"), pr, r.opts.Compression)
		pr.CloseWithError(err)
		zc <- compressed{d, err}
	}()
	ls, err := layer.Write(ctx, io.MultiWriter(bw, pw), res, content, layer.Options{})
	pw.CloseWithError(err)
	z := <-zc
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil && z.err != nil {
		err = fmt.Errorf("compressing: %w", z.err)
	}
	return ls, z.diffID, err
}

// newTree is the VM's tree to diff: the agent itself, or (transfer full) the whole filesystem
// streamed once and unpacked locally.
func (r *run) newTree(ctx context.Context) (source.Source, error) {
	if r.opts.Transfer != TransferFull {
		return r.src, nil
	}
	total := ManifestTotal(ctx, r.src, r.excludes())
	ts, err := r.src.Filesystem(ctx, wire.TreeArgs{Excludes: r.excludes()})
	if err != nil {
		return nil, err
	}
	defer ts.Close()
	counted := &countingStream{TarStream: ts, add: r.byteCounter(PhaseDiff, total)}
	dir := filepath.Join(r.work, "vm")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	if err := source.Unpack(ctx, counted, dir, r.opts.Logf); err != nil {
		return nil, fmt.Errorf("receiving the VM's filesystem: %w", err)
	}
	r.report.BytesTransferred += ts.WireBytes()
	return source.OpenDir(dir, r.opts.Source+" (transferred whole)")
}

// countingContent passes Files requests on and adds up the bytes their streams moved.
type countingContent struct {
	src     source.Source
	mu      sync.Mutex
	streams []source.TarStream
}

func (c *countingContent) Files(ctx context.Context, args wire.TreeArgs) (source.TarStream, error) {
	ts, err := c.src.Files(ctx, args)
	if err == nil {
		c.mu.Lock()
		c.streams = append(c.streams, ts)
		c.mu.Unlock()
	}
	return ts, err
}

func (c *countingContent) wire() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, s := range c.streams {
		n += s.WireBytes()
	}
	return n
}
