package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/proto"
)

// Operations of the protocol.
const (
	OpInfo       = "info"
	OpPackages   = "packages"
	OpDeps       = "deps"
	OpProcesses  = "processes"
	OpTree       = "tree"
	OpHash       = "hash"
	OpFiles      = "files"
	OpFilesystem = "filesystem"
)

// HashArgs are the arguments of the hash request.
type HashArgs struct {
	Paths Paths `json:"paths"`
}

// MaxHashPaths bounds one hash request.
const MaxHashPaths = 100000

// Handler returns the protocol handler that serves this agent.
func (a *Agent) Handler() proto.Handler { return proto.HandlerFunc(a.serve) }

// serve answers one request; errors of the tree code map to their wire codes here, once.
func (a *Agent) serve(ctx context.Context, req proto.Request, w io.Writer) error {
	err := a.dispatch(ctx, req, w)
	if errors.Is(err, fswalk.ErrOutsideRoot) && !errors.Is(err, proto.ErrOutsideRoot) {
		err = fmt.Errorf("%w: %w", proto.ErrOutsideRoot, err)
	}
	return err
}

func (a *Agent) dispatch(ctx context.Context, req proto.Request, w io.Writer) error {
	switch req.Op {
	case OpInfo:
		return writeJSON(w)(a.Info(ctx))
	case OpPackages:
		return writeJSON(w)(a.Packages(ctx))
	case OpDeps:
		var args DepsArgs
		if err := decodeArgs(req, &args); err != nil {
			return err
		}
		return writeJSON(w)(a.Deps(ctx, args))
	case OpProcesses:
		var args ProcessArgs
		if err := decodeArgs(req, &args); err != nil {
			return err
		}
		return writeJSON(w)(a.Processes(ctx, args))
	case OpHash:
		var args HashArgs
		if err := decodeArgs(req, &args); err != nil {
			return err
		}
		if len(args.Paths) > MaxHashPaths {
			return fmt.Errorf("%w: %d paths in one hash request (at most %d)", proto.ErrBadRequest, len(args.Paths), MaxHashPaths)
		}
		return writeJSON(w)(a.Hash(ctx, args.Paths), nil)
	case OpTree:
		return a.serveTree(ctx, req, w)
	case OpFiles, OpFilesystem:
		return a.serveTar(ctx, req, w)
	case OpDelta:
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

func (a *Agent) serveTree(ctx context.Context, req proto.Request, w io.Writer) error {
	var args TreeArgs
	if err := decodeArgs(req, &args); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	ew := fsmeta.NewWriter(bw)
	res, err := a.Tree(ctx, args, ew.Write)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return setTrailer(ctx, res)
}

func (a *Agent) serveTar(ctx context.Context, req proto.Request, w io.Writer) error {
	var args TreeArgs
	if err := decodeArgs(req, &args); err != nil {
		return err
	}
	if req.Op == OpFiles && len(args.Paths) == 0 {
		return fmt.Errorf("%w: files needs paths", proto.ErrBadRequest)
	}
	cw, err := NewCompressor(w, args.Compression, args.Level)
	if err != nil {
		return fmt.Errorf("%w: %v", proto.ErrBadRequest, err)
	}
	produce := a.Filesystem
	if req.Op == OpFiles {
		produce = a.Files
	}
	res, err := compressPipelined(ctx, cw, args.Compression == CompressNone, func(w io.Writer) (TreeResult, error) {
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
func compressPipelined(ctx context.Context, cw io.Writer, plain bool, produce func(io.Writer) (TreeResult, error)) (TreeResult, error) {
	if plain {
		return produce(cw)
	}
	ring := proto.NewRing(pipelineRing)
	var res TreeResult
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
