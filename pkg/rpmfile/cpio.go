package rpmfile

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"
)

const (
	cpioHeaderSize = 110
	cpioMagic      = "070701"
	cpioTrailer    = "TRAILER!!!"
	maxName        = 4096    // PATH_MAX
	maxLinkTarget  = 4096    // a symlink's target
	maxPending     = 1 << 16 // hard link names waiting for their group's data
)

// File types of a cpio mode.
const (
	sIFMT  = 0o170000
	sIFLNK = 0o120000
	sIFREG = 0o100000
	sIFBLK = 0o060000
	sIFDIR = 0o040000
	sIFCHR = 0o020000
	sIFIFO = 0o010000
)

// cpioReader converts a cpio "newc" archive to tar headers (debfile.Entries). rpm writes a
// hard link group's names with no data but the last, which carries it: the names before it
// wait, then come as hard links to it.
type cpioReader struct {
	r       *bufio.Reader
	body    io.Reader     // the current entry's data
	skip    int64         // unread data and padding of the current entry
	queue   []*tar.Header // links to emit before reading on
	pending map[uint64][]*tar.Header
	waiting int
	seen    map[uint64]int    // names seen of each hard link group
	file    map[uint64]string // the name that carried each group's data
	done    bool
}

func newCPIOReader(r io.Reader) *cpioReader {
	return &cpioReader{r: bufio.NewReaderSize(r, 64<<10), pending: map[uint64][]*tar.Header{},
		seen: map[uint64]int{}, file: map[uint64]string{}}
}

func (c *cpioReader) Read(p []byte) (int, error) {
	if c.body == nil {
		return 0, io.EOF
	}
	n, err := c.body.Read(p)
	c.skip -= int64(n)
	return n, err
}

// Next returns the next entry as a tar header (the payload's body, for a regular file, read
// from c).
func (c *cpioReader) Next() (*tar.Header, error) {
	for {
		if len(c.queue) > 0 {
			h := c.queue[0]
			c.queue = c.queue[1:]
			c.body = nil
			return h, nil
		}
		if c.done {
			return nil, io.EOF
		}
		h, ino, nlink, err := c.header()
		if err != nil {
			return nil, err
		}
		if h == nil { // the trailer
			c.done = true
			if c.waiting > 0 {
				return nil, fmt.Errorf("%w: %d hard links without their file", ErrFormat, c.waiting)
			}
			continue
		}
		if h.Typeflag != tar.TypeReg || nlink < 2 {
			return h, nil
		}
		if out := c.link(h, ino, nlink); out != nil {
			return out, nil
		}
	}
}

// link handles a name of a hard link group: nil while the group's data is still to come (the
// name waits), else the header to emit now, with the waiting names queued as links to it.
func (c *cpioReader) link(h *tar.Header, ino uint64, nlink int64) *tar.Header {
	c.seen[ino]++
	if file, ok := c.file[ino]; ok { // after the group's data: a link to it (data again is skipped)
		return &tar.Header{Name: h.Name, Typeflag: tar.TypeLink, Linkname: file, Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, ModTime: h.ModTime}
	}
	if h.Size == 0 && int64(c.seen[ino]) < nlink {
		c.pending[ino] = append(c.pending[ino], h)
		c.waiting++
		return nil
	}
	for _, l := range c.pending[ino] {
		c.queue = append(c.queue, &tar.Header{Name: l.Name, Typeflag: tar.TypeLink, Linkname: h.Name,
			Mode: l.Mode, Uid: l.Uid, Gid: l.Gid, ModTime: l.ModTime})
	}
	c.waiting -= len(c.pending[ino])
	delete(c.pending, ino)
	c.file[ino] = h.Name
	return h
}

// header reads the next cpio header and name (nil at the trailer), after what is left of the
// entry before.
func (c *cpioReader) header() (h *tar.Header, ino uint64, nlink int64, err error) {
	if c.skip > 0 {
		if _, err := io.CopyN(io.Discard, c.r, c.skip); err != nil {
			return nil, 0, 0, fmt.Errorf("%w: truncated cpio entry", ErrFormat)
		}
	}
	c.body, c.skip = nil, 0
	var raw [cpioHeaderSize]byte
	if _, err := io.ReadFull(c.r, raw[:]); err != nil {
		return nil, 0, 0, fmt.Errorf("%w: truncated cpio header", ErrFormat)
	}
	if string(raw[:6]) != cpioMagic {
		return nil, 0, 0, fmt.Errorf("%w: cpio magic %q (only \"newc\", %s)", ErrFormat, raw[:6], cpioMagic)
	}
	var f [13]uint64
	for i := range f {
		v, err := strconv.ParseUint(string(raw[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%w: bad cpio header field", ErrFormat)
		}
		f[i] = v
	}
	ino, mode, uid, gid, nl, mtime, size := f[0], f[1], f[2], f[3], int64(f[4]), f[5], int64(f[6])
	namesize := f[11]
	if namesize < 2 || namesize > maxName {
		return nil, 0, 0, fmt.Errorf("%w: a cpio name of %d bytes", ErrFormat, namesize)
	}
	name := make([]byte, namesize+pad4(cpioHeaderSize+namesize))
	if _, err := io.ReadFull(c.r, name); err != nil || name[namesize-1] != 0 {
		return nil, 0, 0, fmt.Errorf("%w: truncated cpio name", ErrFormat)
	}
	h = &tar.Header{Name: string(name[:namesize-1]), Mode: int64(mode &^ sIFMT), Uid: int(uid), Gid: int(gid),
		ModTime: time.Unix(int64(mtime), 0), Devmajor: int64(f[9]), Devminor: int64(f[10])}
	if h.Name == cpioTrailer {
		return nil, 0, 0, nil
	}
	c.skip = size + int64(pad4(uint64(size)))
	c.body = io.LimitReader(c.r, size)
	if err := c.setType(h, mode, size); err != nil {
		return nil, 0, 0, err
	}
	return h, ino, nl, nil
}

// setType sets h's type from the cpio mode (a symlink's target is its data).
func (c *cpioReader) setType(h *tar.Header, mode uint64, size int64) error {
	switch mode & sIFMT {
	case sIFREG:
		h.Typeflag, h.Size = tar.TypeReg, size
	case sIFDIR:
		h.Typeflag = tar.TypeDir
	case sIFLNK:
		if size < 1 || size > maxLinkTarget {
			return fmt.Errorf("%w: %s: a symlink target of %d bytes", ErrFormat, h.Name, size)
		}
		target := make([]byte, size)
		if _, err := io.ReadFull(c, target); err != nil {
			return fmt.Errorf("%w: %s: truncated symlink target", ErrFormat, h.Name)
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, string(target)
	case sIFCHR:
		h.Typeflag = tar.TypeChar
	case sIFBLK:
		h.Typeflag = tar.TypeBlock
	case sIFIFO:
		h.Typeflag = tar.TypeFifo
	default: // sockets and what is no file type: no layer holds them
		return fmt.Errorf("%w: %s: cpio file type %#o", ErrFormat, h.Name, mode&sIFMT)
	}
	if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeSymlink && size != 0 {
		return fmt.Errorf("%w: %s: data on an entry of type %q", ErrFormat, h.Name, h.Typeflag)
	}
	if c.waiting >= maxPending {
		return fmt.Errorf("%w: over %d hard links waiting for their file", ErrFormat, maxPending)
	}
	return nil
}

// pad4 is the padding after n bytes to a multiple of 4.
func pad4(n uint64) uint64 { return (4 - n%4) % 4 }
