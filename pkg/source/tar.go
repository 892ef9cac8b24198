package source

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/vm2image/vm2image/internal/workdir"
	"github.com/vm2image/vm2image/pkg/archive"
)

// OpenTar unpacks a root-filesystem archive (plain, gzip or zstd) into a private directory
// under opts.WorkDir and serves it with the agent's code. The directory (0700, holding the
// unpacked root) is removed on Close and on every error; one left by a run that was killed is
// removed by the next OpenTar in the same parent directory.
func OpenTar(ctx context.Context, file, name string, opts Options) (Source, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("opening source %s: %w", name, err)
	}
	defer f.Close()
	// A read blocked on a slow archive (a pipe, a network filesystem) ends when ctx does.
	defer context.AfterFunc(ctx, func() { f.Close() })()
	td, err := workdir.New(opts.WorkDir, "vm2image-tar-")
	if err != nil {
		return nil, fmt.Errorf("opening source %s: %w", name, err)
	}
	root := filepath.Join(td.Path(), "root")
	err = os.Mkdir(root, 0o700)
	if err == nil {
		err = Unpack(ctx, f, root, opts.Logf)
		if err != nil && ctx.Err() != nil {
			err = ctx.Err() // the archive was closed under the read
		}
		if err != nil {
			err = fmt.Errorf("unpacking %s: %w", name, err)
		}
	}
	var src Source
	if err == nil {
		src, err = OpenDir(root, name)
	}
	if err != nil {
		td.Remove()
		return nil, err
	}
	src.(*local).cleanup = td.Remove
	return src, nil
}

// Decompress detects gzip or zstd by their magic numbers and returns a reader of the plain bytes.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return pgzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// Unpack extracts a (possibly compressed) tar stream into dir with archive.Apply: entries with
// absolute names or ".." components, and writes through symlinks that leave dir, are refused
// with an error naming the entry. Owners, modes, times, devices, fifos, hard links and xattrs
// are restored where the process may do so; logf reports what could not be.
func Unpack(ctx context.Context, r io.Reader, dir string, logf func(string, ...any)) error {
	plain, err := Decompress(r)
	if err != nil {
		return err
	}
	defer plain.Close()
	return archive.Apply(ctx, dir, plain, archive.Logf(logf))
}
