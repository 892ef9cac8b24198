package layer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// maxRequestBytes bounds the JSON-encoded paths of one Files request: a request to an agent
// must fit in one protocol frame (1 MiB). Larger lists are split into requests made one after
// the other, each read to its end before the next is made.
var maxRequestBytes = 768 << 10

// contentReader reads the content streams in step with the layer: each file the layer writes is
// the stream's next entry, or missing from it (vanished) if the next entry is a later one.
type contentReader struct {
	ctx     context.Context
	src     Content
	chunks  [][]string // requests not made yet
	stream  source.TarStream
	tr      *tar.Reader
	order   map[string]int // requested path -> position
	pending *tar.Header    // read but not yet asked for
	eof     bool           // every stream has ended
}

func newContentReader(ctx context.Context, src Content, paths []string) *contentReader {
	order := make(map[string]int, len(paths))
	for i, p := range paths {
		order[p] = i
	}
	return &contentReader{ctx: ctx, src: src, chunks: chunkPaths(paths, maxRequestBytes), order: order}
}

// chunkPaths splits paths into lists whose JSON encoding stays under max bytes: one list
// unless it is very long.
func chunkPaths(paths []string, max int) [][]string {
	var out [][]string
	start, size := 0, 0
	for i, p := range paths {
		n := jsonLen(p) + 1
		if size+n > max && i > start {
			out = append(out, paths[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(paths) {
		out = append(out, paths[start:])
	}
	return out
}

// jsonLen is an upper bound of the length of s as a JSON string.
func jsonLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r < 0x20 || r == '"' || r == '\\' || r == utf8.RuneError || r == '<' || r == '>' || r == '&':
			n += 6
		default:
			n += w
		}
		i += w
	}
	return n
}

// next returns the header of path's entry, positioned to read its contents, or nil if the
// streams do not hold it. Entries that were not asked for, or out of order, are errors.
func (c *contentReader) next(path string) (*tar.Header, error) {
	want, ok := c.order[path]
	if !ok {
		return nil, fmt.Errorf("reading contents of %q: not requested", path)
	}
	if err := c.fill(); err != nil || c.pending == nil {
		return nil, err
	}
	name := entryName(c.pending.Name)
	got, ok := c.order[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("reading contents of %q: the stream holds %q, which was not requested", path, name)
	case got < want:
		return nil, fmt.Errorf("reading contents of %q: the stream holds %q out of order", path, name)
	case got > want:
		return nil, nil // path is missing; the pending entry is a later one
	}
	h := c.pending
	c.pending = nil
	return h, nil
}

// fill reads the next header unless one is pending or every stream has ended, making the next
// request when a stream ends.
func (c *contentReader) fill() error {
	for c.pending == nil && !c.eof {
		if c.tr == nil {
			if len(c.chunks) == 0 {
				c.eof = true
				return nil
			}
			if err := c.open(); err != nil {
				return err
			}
		}
		h, err := c.tr.Next()
		switch {
		case err == io.EOF:
			if err := c.closeStream(); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("reading file contents: %w", err)
		default:
			c.pending = h
		}
	}
	return nil
}

func (c *contentReader) open() error {
	paths := c.chunks[0]
	c.chunks = c.chunks[1:]
	s, err := c.src.Files(c.ctx, wire.TreeArgs{Paths: paths, NoXattrs: true})
	if err != nil {
		return fmt.Errorf("requesting file contents: %w", err)
	}
	c.stream, c.tr = s, tar.NewReader(s)
	return nil
}

// closeStream reads the current stream to its end and closes it.
func (c *contentReader) closeStream() error {
	_, err := io.Copy(io.Discard, c.stream)
	c.stream.Close()
	c.stream, c.tr = nil, nil
	if err != nil {
		return fmt.Errorf("reading file contents: %w", err)
	}
	return nil
}

// end checks that nothing is left in the streams.
func (c *contentReader) end() error {
	if err := c.fill(); err != nil {
		return err
	}
	if c.pending != nil {
		return fmt.Errorf("reading file contents: the stream holds %q after every requested file", entryName(c.pending.Name))
	}
	return nil
}

// close releases a stream left open by an error.
func (c *contentReader) close() {
	if c.stream != nil {
		c.stream.Close()
	}
}

// entryName is a tar entry's name as a relative path without "./" or a trailing slash.
func entryName(name string) string {
	name = strings.TrimPrefix(name, "./")
	if name != "/" {
		name = strings.TrimSuffix(name, "/")
	}
	return name
}
