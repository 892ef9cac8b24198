package pkgmgr

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/vm2image/vm2image/internal/rootfs"
)

// Limits on what the text parsers accept, so a corrupt or hostile database is
// an error rather than an out-of-memory crash.
const (
	maxLineSize = 1 << 20   // one line (one field line in dpkg terms)
	maxFileSize = 512 << 20 // one database file
)

// lineReader reads lines with a cap on each line's length and on the total
// read, counting lines for error messages.
type lineReader struct {
	sc      *bufio.Scanner
	limited *io.LimitedReader
	maxLine int
	maxFile int64
	line    int
}

func newLineReader(r io.Reader, maxLine int, maxFile int64) *lineReader {
	lr := &io.LimitedReader{R: r, N: maxFile + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4<<10), maxLine+1) // +1: room for the newline
	return &lineReader{sc: sc, limited: lr, maxLine: maxLine, maxFile: maxFile}
}

// next returns the next line without its line ending, or io.EOF.
func (l *lineReader) next() ([]byte, error) {
	if !l.sc.Scan() {
		err := l.sc.Err()
		switch {
		case errors.Is(err, bufio.ErrTooLong):
			l.line++
			return nil, l.errorf("line longer than %d bytes: %w", l.maxLine, ErrTooLarge)
		case err != nil:
			return nil, err
		case l.limited.N <= 0:
			return nil, l.errorf("input over %d bytes: %w", l.maxFile, ErrTooLarge)
		}
		return nil, io.EOF
	}
	l.line++
	if l.limited.N <= 0 {
		return nil, l.errorf("input over %d bytes: %w", l.maxFile, ErrTooLarge)
	}
	return l.sc.Bytes(), nil
}

// errorf returns a ParseError at the current line.
func (l *lineReader) errorf(format string, args ...any) error {
	line := l.line
	if line == 0 {
		line = 1
	}
	return &ParseError{Line: line, Err: fmt.Errorf(format, args...)}
}

// errorAt returns a ParseError at the given line.
func errorAt(line int, err error) error {
	return &ParseError{Line: line, Err: err}
}

// budget bounds the bytes read from a database spread over several files (dpkg's updates,
// pacman's desc files), on top of each file's own bound.
type budget struct {
	what string
	left int64
}

// open opens the database file name inside the root under the smaller of perFile and what
// is left of the budget.
func (b *budget) open(r *rootfs.Root, name string, perFile int64) (*rootfs.File, error) {
	f, err := r.OpenBounded(name, min(perFile, b.left))
	if err != nil {
		if errors.Is(err, ErrTooLarge) && b.left < perFile {
			return nil, fmt.Errorf("%s over %d bytes in all: %w", b.what, b.left, err)
		}
		return nil, err
	}
	b.left -= f.Size()
	return f, nil
}
