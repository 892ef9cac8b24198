package layer

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Content is where the layer's file contents come from; source.Source satisfies it.
type Content interface {
	// Files returns an uncompressed tar stream of args.Paths, in the order given.
	Files(ctx context.Context, args wire.TreeArgs) (source.TarStream, error)
}

var _ Content = source.Source(nil)

// Options control Write.
type Options struct {
	// KeepSELinux keeps security.selinux labels; they are dropped by default.
	KeepSELinux bool
	// Strict ends the layer with an error at the first problem instead of skipping the path.
	Strict bool
	// OnError is called for each problem after it is recorded; a non-nil error ends Write.
	OnError func(path string, err error) error
}

// LayerStats describe a written layer.
type LayerStats struct {
	Entries      int64  `json:"entries"`       // tar entries, whiteouts included
	Whiteouts    int64  `json:"whiteouts"`     // .wh.NAME entries
	Opaques      int64  `json:"opaques"`       // .wh..wh..opq entries
	Files        int64  `json:"files"`         // regular files written with their contents
	Hardlinks    int64  `json:"hardlinks"`     // regular files written as links to an earlier name
	Bytes        int64  `json:"bytes"`         // size of the tar stream
	ContentBytes int64  `json:"content_bytes"` // file contents in it
	DiffID       string `json:"diff_id"`       // "sha256:<hex>" of the tar stream
	// Problems are paths left out or written as read because they changed since the diff.
	Problems []diff.Problem `json:"problems,omitempty"`
}

// Per-path problems with the contents. They go to Options.OnError and end a Strict Write.
var (
	// ErrVanished is a file the content stream did not hold: it vanished or became unreadable.
	ErrVanished = errors.New("file vanished since the diff")
	// ErrChanged is a file whose type, size or digest differs from what the diff saw. A file of
	// another size is written as read; one whose digest differs was written already.
	ErrChanged = errors.New("file changed since the diff")
	// ErrWhiteoutName is a path with a name starting with ".wh.", which a layer cannot hold:
	// appliers would take it for a whiteout. It is left out.
	ErrWhiteoutName = errors.New("name reserved for whiteouts")
)

// whiteoutTime is the mtime of whiteout entries: fixed, so layers are reproducible.
var whiteoutTime = time.Unix(0, 0)

// Write writes an uncompressed OCI layer tar to w that turns the old tree of res into its new
// tree, with file contents from content. Entries come in the order plan describes: walk order,
// each directory followed by its whiteouts. Every changed path is preceded by its parent
// directories with the new tree's metadata. The first name of a hard-link group in the layer
// is a file and the others are links to it (the diff lists every name of a group that has a
// changed name). All regular files are requested in one Files call, in layer order (in a few
// calls one after the other if the list would not fit in one request to an agent), and each is
// checked against the change list as it streams past. A file that vanished since the diff is
// left out, one of another size is written as read, a name reserved for whiteouts is refused:
// all are problems (LayerStats.Problems, Options.OnError) that end the layer only if Strict.
// The same inputs give the same bytes.
func Write(ctx context.Context, w io.Writer, res *diff.Result, content Content, opts Options) (LayerStats, error) {
	items, refused, err := plan(res)
	if err != nil {
		return LayerStats{}, err
	}
	lw := newWriter(ctx, w, opts)
	defer lw.digest.Close()
	for _, p := range refused {
		if err := lw.problem(p, fmt.Errorf("%w: %q", ErrWhiteoutName, p)); err != nil {
			return lw.stats, err
		}
	}
	lw.content = newContentReader(ctx, content, contentPaths(items))
	defer lw.content.close()
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return lw.stats, err
		}
		if err := lw.item(it); err != nil {
			return lw.stats, err
		}
	}
	return lw.finish()
}

// writer writes one layer.
type writer struct {
	ctx     context.Context
	opts    Options
	bw      *bufio.Writer
	tw      *tar.Writer
	digest  *asyncHash
	count   *countWriter
	content *contentReader
	links   map[linkKey]string // first name written of each hard-linked inode
	lost    map[linkKey]bool   // inodes whose first name could not be written
	buf     []byte
	stats   LayerStats
}

func newWriter(ctx context.Context, w io.Writer, opts Options) *writer {
	lw := &writer{ctx: ctx, opts: opts, digest: newAsyncHash(), count: &countWriter{},
		links: map[linkKey]string{}, lost: map[linkKey]bool{}}
	lw.bw = bufio.NewWriterSize(io.MultiWriter(w, lw.digest, lw.count), 256<<10)
	lw.tw = tar.NewWriter(lw.bw)
	return lw
}

func (lw *writer) item(it item) error {
	switch it.kind {
	case whiteoutItem:
		lw.stats.Whiteouts++
		return lw.marker(whiteoutName(it.path))
	case opaqueItem:
		lw.stats.Opaques++
		return lw.marker(joinKey(it.path, archive.OpaqueMarker))
	}
	if it.e.Type == fsmeta.TypeRegular {
		return lw.file(it.e)
	}
	return lw.header(lw.headerOf(it.e))
}

// marker writes an empty whiteout file.
func (lw *writer) marker(name string) error {
	return lw.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, ModTime: whiteoutTime, Format: tar.FormatPAX})
}

// headerOf is the entry's tar header with the xattr policy applied.
func (lw *writer) headerOf(e *fsmeta.Entry) *tar.Header {
	h := e.TarHeader()
	if !lw.opts.KeepSELinux {
		delete(h.PAXRecords, archive.PAXXattrPrefix+"security.selinux")
	}
	return h
}

func (lw *writer) header(h *tar.Header) error {
	if err := lw.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing layer entry %q: %w", h.Name, err)
	}
	lw.stats.Entries++
	return nil
}

// file writes a regular file: a link to an earlier name of its inode, or its contents.
func (lw *writer) file(e *fsmeta.Entry) error {
	k := linkKey{e.Dev, e.Ino}
	if e.Nlink > 1 {
		if first, ok := lw.links[k]; ok {
			h := lw.headerOf(e)
			h.Typeflag, h.Linkname, h.Size, h.PAXRecords = tar.TypeLink, first, 0, nil
			lw.stats.Hardlinks++
			return lw.header(h)
		}
		if lw.lost[k] {
			return lw.problem(e.Path, fmt.Errorf("%w: its hard link %q could not be written", ErrVanished, e.Path))
		}
	}
	written, err := lw.fileContents(e)
	if err != nil || !written {
		if e.Nlink > 1 {
			lw.lost[k] = true
		}
		return err
	}
	if e.Nlink > 1 {
		lw.links[k] = e.Path
	}
	lw.stats.Files++
	return nil
}

// fileContents writes a file's header and contents from the content stream; written is false
// when the stream does not hold the file.
func (lw *writer) fileContents(e *fsmeta.Entry) (written bool, err error) {
	h := lw.headerOf(e)
	if e.Size == 0 {
		return true, lw.header(h)
	}
	ch, err := lw.content.next(e.Path)
	if err != nil || ch == nil {
		if err == nil {
			err = lw.problem(e.Path, fmt.Errorf("%w: %q", ErrVanished, e.Path))
		}
		return false, err
	}
	if ch.Typeflag != tar.TypeReg {
		return false, lw.problem(e.Path, fmt.Errorf("%w: %q is no longer a regular file", ErrChanged, e.Path))
	}
	if ch.Size != e.Size {
		if err := lw.problem(e.Path, fmt.Errorf("%w: %q has %d bytes, not %d", ErrChanged, e.Path, ch.Size, e.Size)); err != nil {
			return false, err
		}
		h.Size = ch.Size
	}
	if err := lw.header(h); err != nil {
		return false, err
	}
	return true, lw.copyContents(e, h.Size)
}

// copyContents copies size bytes of the current content entry into the layer, checking the
// digest when the diff knows it.
func (lw *writer) copyContents(e *fsmeta.Entry, size int64) error {
	var hh hash.Hash
	dst := io.Writer(lw.tw)
	if e.Digest != "" && size == e.Size {
		hh = sha256.New()
		dst = io.MultiWriter(lw.tw, hh)
	}
	if lw.buf == nil {
		lw.buf = make([]byte, 1<<20)
	}
	n, err := copyCtx(lw.ctx, dst, lw.content.tr, lw.buf)
	lw.stats.ContentBytes += n
	if err != nil {
		return fmt.Errorf("copying contents of %q: %w", e.Path, err)
	}
	if n != size {
		return fmt.Errorf("copying contents of %q: %d bytes of %d", e.Path, n, size)
	}
	if hh != nil {
		if got := "sha256:" + hex.EncodeToString(hh.Sum(nil)); got != e.Digest {
			return lw.problem(e.Path, fmt.Errorf("%w: %q has digest %s, not %s", ErrChanged, e.Path, got, e.Digest))
		}
	}
	return nil
}

// problem records a per-path problem and says whether it ends the layer.
func (lw *writer) problem(p string, err error) error {
	if len(lw.stats.Problems) < 500 {
		lw.stats.Problems = append(lw.stats.Problems, diff.Problem{Path: p, Tree: "new", Err: err.Error()})
	}
	if lw.opts.OnError != nil {
		if err := lw.opts.OnError(p, err); err != nil {
			return err
		}
	}
	if lw.opts.Strict {
		return fmt.Errorf("writing layer: %w", err)
	}
	return nil
}

// finish ends the tar stream and checks that the content stream held nothing more.
func (lw *writer) finish() (LayerStats, error) {
	if err := lw.content.end(); err != nil {
		return lw.stats, err
	}
	if err := lw.tw.Close(); err != nil {
		return lw.stats, fmt.Errorf("writing layer trailer: %w", err)
	}
	if err := lw.bw.Flush(); err != nil {
		return lw.stats, fmt.Errorf("writing layer: %w", err)
	}
	lw.stats.Bytes = lw.count.n
	lw.stats.DiffID = "sha256:" + hex.EncodeToString(lw.digest.Sum())
	return lw.stats, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// copyCtx copies src to dst until EOF, checking ctx between chunks.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
