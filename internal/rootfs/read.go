package rootfs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// File is a regular file of a root opened for reading under a size bound: a file larger than
// the bound when opened is refused, and reading past the bound (a file that grows) is an error.
type File struct {
	f     *os.File
	name  string // as the VM sees it
	size  int64  // at open
	limit int64
	n     int64
}

// OpenBounded opens the regular file name for reading, refusing it with ErrTooLarge when it
// holds more than limit bytes.
func (r *Root) OpenBounded(name string, limit int64) (*File, error) {
	f, st, err := r.openRegular(name)
	if err != nil {
		return nil, err
	}
	if st.Size > limit {
		f.Close()
		return nil, tooLarge(vmPath(name), limit)
	}
	return &File{f: f, name: vmPath(name), size: st.Size, limit: limit}, nil
}

func tooLarge(name string, limit int64) error {
	return &fs.PathError{Op: "reading", Path: name, Err: fmt.Errorf("%w: over the bound of %d bytes", ErrTooLarge, limit)}
}

// Read reads up to the bound; a byte past it is an error wrapping ErrTooLarge.
func (f *File) Read(p []byte) (int, error) {
	if int64(len(p)) > f.limit-f.n+1 {
		p = p[:f.limit-f.n+1]
	}
	n, err := f.f.Read(p)
	f.n += int64(n)
	if f.n > f.limit {
		return n - int(f.n-f.limit), tooLarge(f.name, f.limit)
	}
	return n, err
}

// Name returns the file's path as the VM sees it.
func (f *File) Name() string { return f.name }

// Size returns the file's size when it was opened.
func (f *File) Size() int64 { return f.size }

// OS returns the underlying file, for readers that need to seek (the caller keeps the bound).
func (f *File) OS() *os.File { return f.f }

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// ReadFile reads the regular file name whole, refusing one over limit bytes with an error that
// names the path and the bound.
func (r *Root) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := r.OpenBounded(name, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 0, f.size+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ReadFile opens dir as a root and reads name in it: a one-off read.
func ReadFile(dir, name string, limit int64) ([]byte, error) {
	r, err := Open(dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadFile(name, limit)
}
