package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/vm2image/vm2image/internal/wirecompress"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/vmread"
	"github.com/vm2image/vm2image/pkg/wire"
)

// server answers the protocol's requests from one Reader.
type server struct{ r *vmread.Reader }

// Handler returns the protocol handler that serves what r reads.
func Handler(r *vmread.Reader) proto.Handler { return proto.HandlerFunc(server{r}.serve) }

// serve answers one request; errors of the tree code map to their wire codes here, once.
func (a server) serve(ctx context.Context, req proto.Request, w io.Writer) error {
	err := a.dispatch(ctx, req, w)
	if errors.Is(err, fswalk.ErrOutsideRoot) && !errors.Is(err, proto.ErrOutsideRoot) {
		err = fmt.Errorf("%w: %w", proto.ErrOutsideRoot, err)
	}
	return err
}

func (a server) dispatch(ctx context.Context, req proto.Request, w io.Writer) error {
	switch req.Op {
	case wire.OpInfo:
		return writeJSON(w)(a.r.Info(ctx))
	case wire.OpPackages:
		return writeJSON(w)(a.r.Packages(ctx))
	case wire.OpDeps:
		var args wire.DepsArgs
		if err := decodeArgs(req, &args); err != nil {
			return err
		}
		return writeJSON(w)(a.r.Deps(ctx, args))
	case wire.OpProcesses:
		var args wire.ProcessArgs
		if err := decodeArgs(req, &args); err != nil {
			return err
		}
		return writeJSON(w)(a.r.Processes(ctx, args))
	case wire.OpHash:
		var args wire.HashArgs
		if err := decodeArgs(req, &args); err != nil {
			return err
		}
		if len(args.Paths) > wire.MaxHashPaths {
			return fmt.Errorf("%w: %d paths in one hash request (at most %d)", proto.ErrBadRequest, len(args.Paths), wire.MaxHashPaths)
		}
		return writeJSON(w)(a.r.Hash(ctx, args.Paths), nil)
	case wire.OpTree:
		return a.serveTree(ctx, req, w)
	case wire.OpFiles, wire.OpFilesystem:
		return a.serveTar(ctx, req, w)
	case wire.OpDelta:
		return a.serveDelta(ctx, req, w)
	}
	return fmt.Errorf("%w: %q", proto.ErrUnknownOp, req.Op)
}

func decodeArgs(req proto.Request, v any) error {
	if len(req.Args) == 0 || bytes.Equal(req.Args, []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(req.Args, v); err != nil {
		return fmt.Errorf("%w: arguments of %s: %v", proto.ErrBadRequest, req.Op, err)
	}
	return nil
}

// writeJSON returns a function that encodes a (value, error) result to w.
func writeJSON(w io.Writer) func(v any, err error) error {
	return func(v any, err error) error {
		if err != nil {
			return err
		}
		return json.NewEncoder(w).Encode(v)
	}
}

func (a server) serveTree(ctx context.Context, req proto.Request, w io.Writer) error {
	var args wire.TreeArgs
	if err := decodeArgs(req, &args); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	ew := fsmeta.NewWriter(bw)
	res, err := a.r.Tree(ctx, args, ew.Write)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return setTrailer(ctx, res)
}

func (a server) serveTar(ctx context.Context, req proto.Request, w io.Writer) error {
	var args wire.TreeArgs
	if err := decodeArgs(req, &args); err != nil {
		return err
	}
	if req.Op == wire.OpFiles && len(args.Paths) == 0 {
		return fmt.Errorf("%w: files needs paths", proto.ErrBadRequest)
	}
	cw, err := wirecompress.NewCompressor(w, args.Compression, args.Level)
	if err != nil {
		return fmt.Errorf("%w: %v", proto.ErrBadRequest, err)
	}
	produce := a.r.Filesystem
	if req.Op == wire.OpFiles {
		produce = a.r.Files
	}
	res, err := compressPipelined(ctx, cw, args.Compression == wire.CompressNone, func(w io.Writer) (wire.TreeResult, error) {
		return produce(ctx, args, w)
	})
	if cerr := cw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTrailer(ctx, res)
}

// compressPipelined runs produce (walk + tar) in its own goroutine, feeding cw (the compressor)
// through a ring buffer, so reading files and compressing overlap: the compressor is the
// bottleneck, and this keeps it busy. Without compression the stage is skipped.
func compressPipelined(ctx context.Context, cw io.Writer, plain bool, produce func(io.Writer) (wire.TreeResult, error)) (wire.TreeResult, error) {
	if plain {
		return produce(cw)
	}
	ring := proto.NewRing(pipelineRing)
	var res wire.TreeResult
	done := make(chan error, 1)
	go func() {
		var err error
		res, err = produce(ring)
		ring.CloseWithError(err)
		done <- err
	}()
	buf := make([]byte, 256<<10)
	_, err := io.CopyBuffer(cw, ring, buf)
	if err != nil {
		ring.CloseRead(err)
	}
	if perr := <-done; perr != nil {
		err = perr
	}
	return res, err
}

// pipelineRing is the buffer between the tar producer and the compressor.
const pipelineRing = 1 << 20

func setTrailer(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	proto.SetTrailer(ctx, b)
	return nil
}

// serveDelta streams a delta, compressed, with the DeltaResult as trailer.
func (a server) serveDelta(ctx context.Context, req proto.Request, w io.Writer) error {
	var args wire.DeltaArgs
	if err := decodeArgs(req, &args); err != nil {
		return err
	}
	cw, err := wirecompress.NewCompressor(w, args.Compression, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", proto.ErrBadRequest, err)
	}
	res, err := a.r.Delta(ctx, args, cw)
	if cerr := cw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTrailer(ctx, res)
}
