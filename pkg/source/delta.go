package source

import (
	"context"
	"fmt"
	"io"

	"github.com/vm2image/vm2image/pkg/wire"
)

// Delta returns the delta of the file at path in the root against signature, computed in-process.
func (l *local) Delta(ctx context.Context, path string, signature []byte) (io.ReadCloser, error) {
	args := wire.DeltaArgs{Path: wire.Path(path), Signature: signature}
	return l.stream(ctx, func(ctx context.Context, w io.Writer) (wire.TreeResult, error) {
		_, err := l.a.Delta(ctx, args, w)
		return wire.TreeResult{}, err
	}), nil
}

// Delta asks the agent for the delta of the file at path against signature, which must be at
// most wire.MaxDeltaSignature bytes. The delta crosses the wire compressed as r's options say.
func (r *remote) Delta(ctx context.Context, path string, signature []byte) (io.ReadCloser, error) {
	if len(signature) > wire.MaxDeltaSignature {
		return nil, fmt.Errorf("agent %s: delta of %q: signature of %d bytes, more than a request carries (%d)",
			r.addr, path, len(signature), wire.MaxDeltaSignature)
	}
	args := wire.DeltaArgs{Path: wire.Path(path), Signature: signature, Compression: r.opts.Compression}
	return r.streamCall(ctx, wire.OpDelta, args, args.Compression)
}
