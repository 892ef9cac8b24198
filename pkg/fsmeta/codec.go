package fsmeta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits that keep a hostile stream from making the decoder allocate without bound.
const (
	MaxEntrySize     = 4 << 20 // one encoded entry
	MaxPathLen       = 64 << 10
	MaxTargetLen     = 4096 // a symlink target (PATH_MAX)
	MaxXattrs        = 1024
	MaxXattrNameLen  = 255      // XATTR_NAME_MAX
	MaxXattrValueLen = 64 << 10 // XATTR_SIZE_MAX
)

// ErrCorrupt is returned for an encoded entry that cannot be decoded.
var ErrCorrupt = errors.New("corrupt entry")

const codecVersion = 1

// AppendEntry appends the binary encoding of e (without a length prefix) to b.
func AppendEntry(b []byte, e *Entry) []byte {
	b = append(b, codecVersion, byte(e.Type))
	b = appendString(b, e.Path)
	for _, v := range []uint64{uint64(e.Mode), uint64(e.UID), uint64(e.GID), uint64(e.Size),
		uint64(e.MTime), uint64(e.DevMajor), uint64(e.DevMinor), e.Dev, e.Ino, uint64(e.Nlink)} {
		b = binary.AppendUvarint(b, v)
	}
	b = appendString(b, e.Target)
	b = appendString(b, e.Digest)
	b = binary.AppendUvarint(b, uint64(len(e.Xattrs)))
	for _, k := range e.XattrNames() {
		b = appendString(b, k)
		b = appendString(b, string(e.Xattrs[k]))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeEntry decodes one entry encoded by AppendEntry; b must hold exactly that entry.
func DecodeEntry(b []byte) (Entry, error) {
	d := decoder{b: b}
	var e Entry
	if v := d.byte(); v != codecVersion && d.err == nil {
		return e, fmt.Errorf("%w: encoding version %d", ErrCorrupt, v)
	}
	e.Type = Type(d.byte())
	e.Path = d.string(MaxPathLen)
	var nums [10]uint64
	for i := range nums {
		nums[i] = d.uvarint()
	}
	e.Mode, e.UID, e.GID = uint32(nums[0]), uint32(nums[1]), uint32(nums[2])
	e.Size, e.MTime = int64(nums[3]), int64(nums[4])
	e.DevMajor, e.DevMinor, e.Dev, e.Ino = uint32(nums[5]), uint32(nums[6]), nums[7], nums[8]
	e.Nlink = uint32(nums[9])
	e.Target = d.string(MaxTargetLen)
	e.Digest = d.string(256)
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > MaxXattrs {
			return e, fmt.Errorf("%w: %d xattrs", ErrCorrupt, n)
		}
		e.Xattrs = make(map[string][]byte, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			k := d.string(MaxXattrNameLen)
			e.Xattrs[k] = []byte(d.string(MaxXattrValueLen))
		}
	}
	if d.err != nil {
		return e, d.err
	}
	if len(d.b) != 0 {
		return e, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return e, e.Validate()
}

// Validate checks the invariants every entry must hold.
func (e *Entry) Validate() error {
	switch {
	case !e.Type.Valid():
		return fmt.Errorf("%w: unknown type %d", ErrCorrupt, e.Type)
	case e.Path == "" || strings.IndexByte(e.Path, 0) >= 0:
		return fmt.Errorf("%w: invalid path %q", ErrCorrupt, e.Path)
	case e.Mode&^ModePerm != 0:
		return fmt.Errorf("%w: %q: mode %o", ErrCorrupt, e.Path, e.Mode)
	case e.Size < 0:
		return fmt.Errorf("%w: %q: negative size", ErrCorrupt, e.Path)
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or oversized %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("header")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(max int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// Writer writes length-prefixed entries to a stream.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write encodes one entry.
func (w *Writer) Write(e *Entry) error {
	w.buf = AppendEntry(w.buf[:0], e)
	var pre [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(pre[:], uint64(len(w.buf)))
	if _, err := w.w.Write(pre[:n]); err != nil {
		return err
	}
	_, err := w.w.Write(w.buf)
	return err
}

// Reader reads entries written by a Writer.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 64<<10)} }

// Read returns the next entry, or io.EOF at the clean end of the stream.
func (r *Reader) Read() (Entry, error) {
	n, err := binary.ReadUvarint(r.r)
	if err == io.EOF {
		return Entry{}, io.EOF
	}
	if err != nil {
		return Entry{}, fmt.Errorf("reading entry length: %w", noEOF(err))
	}
	if n == 0 || n > MaxEntrySize {
		return Entry{}, fmt.Errorf("%w: entry length %d", ErrCorrupt, n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return Entry{}, fmt.Errorf("reading entry: %w", noEOF(err))
	}
	return DecodeEntry(r.buf)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
