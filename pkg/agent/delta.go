package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/vm2image/vm2image/pkg/delta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/proto"
)

// OpDelta is the delta request: one file's delta against a signature the converter sends.
const OpDelta = "delta"

// MaxDeltaSignature bounds the signature of a delta request. It travels base64-encoded inside
// the request, which must fit in one frame (proto.MaxPayload, 1 MiB): 736 KiB encode to 981 KiB,
// leaving room for a 4 KiB path however JSON escapes it. That is 20,934 blocks of 32-byte
// BLAKE2 sums: files up to 42 MB at delta.DefaultBlockLen, about 430 MB at rdiff's
// delta.BlockLen(size), 87 GB at delta.MaxBlockLen; delta.BlockLenWithin(size,
// MaxDeltaSignature) picks the block length for a file of a given size.
const MaxDeltaSignature = 736 << 10

// DeltaArgs are the arguments of the delta request.
type DeltaArgs struct {
	// Path is the file, a slash path from the root, resolved as the files request resolves it.
	Path Path `json:"path"`
	// Signature is the converter's signature of its version of the file (delta.Signature).
	Signature []byte `json:"signature"`
	// Compression of the delta on the wire: zstd (default), gzip, none.
	Compression string `json:"compression,omitempty"`
}

// DeltaResult summarises a delta: the size of the file read and the delta's statistics.
type DeltaResult struct {
	Size  int64       `json:"size"`
	Stats delta.Stats `json:"stats"`
}

// Delta writes to w the delta that turns the converter's version of the regular file args.Path
// (whose signature args.Signature is) into the one in the root. A bad signature is an error
// wrapping proto.ErrBadRequest and the delta package's error; a path outside the root, one
// wrapping fswalk.ErrOutsideRoot; a file that changes while it is read, one wrapping
// fswalk.ErrChanged, after the delta of what was read.
func (a *Agent) Delta(ctx context.Context, args DeltaArgs, w io.Writer) (DeltaResult, error) {
	// Each delta in progress holds a 16 MiB literal buffer: bound them on a production VM.
	select {
	case a.deltaSlots <- struct{}{}:
		defer func() { <-a.deltaSlots }()
	case <-ctx.Done():
		return DeltaResult{}, ctx.Err()
	}
	sig, err := delta.ParseSignature(bytes.NewReader(args.Signature), MaxDeltaSignature)
	if err != nil {
		return DeltaResult{}, fmt.Errorf("%w: %w", proto.ErrBadRequest, err)
	}
	f, err := fswalk.OpenRegular(ctx, a.opts.Root, string(args.Path))
	if err != nil {
		return DeltaResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return DeltaResult{}, err
	}
	// A live file may grow: the delta is of the size seen at open, and a change is an error.
	lr := &io.LimitedReader{R: f, N: fi.Size()}
	st, err := delta.DeltaStats(ctx, sig, lr, w)
	res := DeltaResult{Size: fi.Size() - lr.N, Stats: st}
	if err != nil {
		return res, fmt.Errorf("reading %q: %w", args.Path, err)
	}
	if after, err := f.Stat(); err != nil || lr.N != 0 || after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
		return res, fmt.Errorf("reading %q: %w", args.Path, fswalk.ErrChanged)
	}
	return res, nil
}

// serveDelta streams a delta, compressed, with the DeltaResult as trailer.
func (a *Agent) serveDelta(ctx context.Context, req proto.Request, w io.Writer) error {
	var args DeltaArgs
	if err := decodeArgs(req, &args); err != nil {
		return err
	}
	cw, err := NewCompressor(w, args.Compression, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", proto.ErrBadRequest, err)
	}
	res, err := a.Delta(ctx, args, cw)
	if cerr := cw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTrailer(ctx, res)
}
