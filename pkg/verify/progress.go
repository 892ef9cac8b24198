package verify

import (
	"context"
	"io"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// counter adds up the bytes a comparison reads and hashes, the image's layer blobs as they are
// read and the VM's files as the source hashes them, and reports them with their total to
// Options.Progress. A nil *counter counts nothing.
type counter struct {
	fn          func(done, total int64)
	done, total atomic.Int64
}

func newCounter(fn func(done, total int64)) *counter {
	if fn == nil {
		return nil
	}
	c := &counter{fn: fn}
	c.total.Store(-1)
	return c
}

func (c *counter) add(n int64) {
	if c == nil || n <= 0 {
		return
	}
	c.fn(c.done.Add(n), c.total.Load())
}

// setTotal sets the total from the image's manifest (or the engine's size) and the VM's
// manifest: a walk of its metadata, no contents read.
func (c *counter) setTotal(ctx context.Context, img imageSource, src source.Source, excl []string) {
	if c == nil {
		return
	}
	sz, ok := img.(interface{ size() (int64, error) })
	if !ok {
		return
	}
	imgBytes, err := sz.size()
	if err != nil {
		return
	}
	var vmBytes int64
	_, err = src.Tree(ctx, wire.TreeArgs{Excludes: excl, NoXattrs: true}, func(e *fsmeta.Entry) error {
		if e.Type == fsmeta.TypeRegular {
			vmBytes += e.Size
		}
		return nil
	})
	if err != nil {
		return
	}
	c.total.Store(imgBytes + vmBytes)
	c.fn(c.done.Load(), imgBytes+vmBytes)
}

// vmEntry counts a VM file the source has hashed.
func (c *counter) vmEntry(e *fsmeta.Entry) {
	if c != nil && e.Type == fsmeta.TypeRegular {
		c.add(e.Size)
	}
}

// reader counts what is read through r.
func (c *counter) reader(r io.ReadCloser) io.ReadCloser {
	if c == nil {
		return r
	}
	return &countedReader{ReadCloser: r, c: c}
}

type countedReader struct {
	io.ReadCloser
	c *counter
}

func (r *countedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.c.add(int64(n))
	return n, err
}

// countedLayer counts the bytes of its compressed blob as they are read.
type countedLayer struct {
	v1.Layer
	c *counter
}

func (l countedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return l.c.reader(rc), nil
}

// size is the sum of the layer blobs' sizes the manifest gives.
func (v v1Image) size() (int64, error) {
	m, err := v.img.Manifest()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// size is the engine's figure for the image's contents: the saved stream's layer tars add
// their headers to it, so the total is an estimate.
func (s *savedImage) size() (int64, error) { return s.bytes, nil }
