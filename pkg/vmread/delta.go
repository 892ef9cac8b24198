package vmread

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/vm2image/vm2image/pkg/delta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Delta writes to w the delta that turns the converter's version of the regular file args.Path
// (whose signature args.Signature is) into the one in the root. A bad signature is an error
// wrapping proto.ErrBadRequest and the delta package's error; a path outside the root, one
// wrapping fswalk.ErrOutsideRoot; a file that changes while it is read, one wrapping
// fswalk.ErrChanged, after the delta of what was read.
func (a *Reader) Delta(ctx context.Context, args wire.DeltaArgs, w io.Writer) (wire.DeltaResult, error) {
	// Each delta in progress holds a 16 MiB literal buffer: bound them on a production VM.
	select {
	case a.deltaSlots <- struct{}{}:
		defer func() { <-a.deltaSlots }()
	case <-ctx.Done():
		return wire.DeltaResult{}, ctx.Err()
	}
	sig, err := delta.ParseSignature(bytes.NewReader(args.Signature), wire.MaxDeltaSignature)
	if err != nil {
		return wire.DeltaResult{}, fmt.Errorf("%w: %w", proto.ErrBadRequest, err)
	}
	f, err := fswalk.OpenRegular(ctx, a.opts.Root, string(args.Path))
	if err != nil {
		return wire.DeltaResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return wire.DeltaResult{}, err
	}
	// A live file may grow: the delta is of the size seen at open, and a change is an error.
	lr := &io.LimitedReader{R: f, N: fi.Size()}
	st, err := delta.DeltaStats(ctx, sig, lr, w)
	res := wire.DeltaResult{Size: fi.Size() - lr.N, Stats: st}
	if err != nil {
		return res, fmt.Errorf("reading %q: %w", args.Path, err)
	}
	if after, err := f.Stat(); err != nil || lr.N != 0 || after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
		return res, fmt.Errorf("reading %q: %w", args.Path, fswalk.ErrChanged)
	}
	return res, nil
}
