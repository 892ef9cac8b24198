package diff

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vm2image/vm2image/pkg/delta"
	"github.com/vm2image/vm2image/pkg/wire"
)

// delta measures the block delta of a modified file: the signature of the old file, then the
// delta the new tree computes against it (or, for a tree that cannot, one computed here from
// the new file's contents). A file that cannot be read is a problem, and gets no delta.
func (m *merger) delta(ctx context.Context, c *Change) error {
	var sig bytes.Buffer
	err := readFile(ctx, m.oldT.(fileTree), c.Path, func(r io.Reader, size int64) error {
		bl := delta.BlockLenWithin(size, wire.MaxDeltaSignature)
		if bl == 0 {
			return fmt.Errorf("a signature of %d bytes cannot be sent: %w", size, delta.ErrTooLarge)
		}
		return delta.Signature(ctx, r, &sig, bl)
	})
	if err != nil {
		return m.deltaProblem(ctx, "old", c.Path, err)
	}
	var n int64
	if dt, ok := m.newT.(deltaTree); ok {
		n, err = remoteDelta(ctx, dt, c.Path, sig.Bytes())
	} else {
		n, err = localDelta(ctx, m.newT.(fileTree), c.Path, &sig)
	}
	if err != nil {
		return m.deltaProblem(ctx, "new", c.Path, err)
	}
	c.DeltaBytes = n
	return nil
}

func remoteDelta(ctx context.Context, dt deltaTree, path string, sig []byte) (int64, error) {
	rc, err := dt.Delta(ctx, path, sig)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		return n, fmt.Errorf("reading delta: %w", err)
	}
	return n, nil
}

func localDelta(ctx context.Context, ft fileTree, path string, sigBytes *bytes.Buffer) (int64, error) {
	sig, err := delta.ParseSignature(sigBytes, int64(sigBytes.Len()))
	if err != nil {
		return 0, err
	}
	var n int64
	err = readFile(ctx, ft, path, func(r io.Reader, _ int64) error {
		st, err := delta.DeltaStats(ctx, sig, r, io.Discard)
		n = st.DeltaBytes
		return err
	})
	return n, err
}

// deltaProblem reports a file whose delta could not be computed; context errors end the diff.
func (m *merger) deltaProblem(ctx context.Context, tree, path string, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return m.report(tree, path, fmt.Errorf("computing delta: %w", err))
}

// errMissing is a file a tree's Files stream did not hold: it vanished or could not be read.
var errMissing = errors.New("file not in the tree's stream (vanished or unreadable)")

// readFile fetches one regular file of a tree and passes its contents to fn.
func readFile(ctx context.Context, ft fileTree, path string, fn func(r io.Reader, size int64) error) error {
	st, err := ft.Files(ctx, wire.TreeArgs{Paths: []string{path}, NoXattrs: true})
	if err != nil {
		return err
	}
	defer st.Close()
	tr := tar.NewReader(st)
	h, err := tr.Next()
	switch {
	case err == io.EOF:
		return errMissing
	case err != nil:
		return fmt.Errorf("reading %q: %w", path, err)
	case h.Name != path || h.Typeflag != tar.TypeReg:
		return fmt.Errorf("reading %q: the stream holds %q (type %q)", path, h.Name, h.Typeflag)
	}
	if err := fn(tr, h.Size); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, st) // to EOF, so the stream ends cleanly
	return err
}
