//go:build !linux

package fswalk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/vm2image/vm2image/pkg/fsmeta"
)

// errNoWalk is returned on systems where walks are not implemented: the agent runs on Linux.
var errNoWalk = fmt.Errorf("walking trees on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Walk is implemented on Linux only.
func Walk(ctx context.Context, root string, opts Options, fn func(e *fsmeta.Entry) error) error {
	return errNoWalk
}

// WriteTar is implemented on Linux only.
func WriteTar(ctx context.Context, w io.Writer, root string, opts Options) (Stats, error) {
	return Stats{}, errNoWalk
}

// WriteFiles is implemented on Linux only.
func WriteFiles(ctx context.Context, w io.Writer, root string, paths []string, opts Options, recursive bool) (Stats, error) {
	return Stats{}, errNoWalk
}

// Hash is implemented on Linux only.
func Hash(ctx context.Context, root string, paths []string) []HashResult {
	res := make([]HashResult, len(paths))
	for i, p := range paths {
		res[i] = HashResult{Path: p, Err: errNoWalk.Error()}
	}
	return res
}

// HashMemo is implemented on Linux only.
func HashMemo(ctx context.Context, root string, paths []string, memo *DigestMemo) []HashResult {
	return Hash(ctx, root, paths)
}

// OpenRegular is implemented on Linux only.
func OpenRegular(ctx context.Context, root, p string) (*os.File, error) { return nil, errNoWalk }
