package debfile

import (
	"fmt"
	"io"
)

// maxXZDict bounds the LZMA2 dictionary an xz member may ask for. The xz decoder allocates
// each block's dictionary as its header says (up to 4 GiB) and fills it as it decodes, so a
// 200 KiB member could cost gigabytes; xz -9 uses 64 MiB, dpkg-deb's default 8 MiB.
const maxXZDict = 64 << 20

// xzGuard passes an xz stream through while walking its structure (stream header, block
// headers, LZMA2 chunk headers, padding and checks, up to the index), and fails before the
// decoder sees a block header whose dictionary is over maxXZDict. It decodes nothing: what it
// does not understand it leaves to the decoder, which refuses it.
type xzGuard struct {
	r     io.Reader
	state int
	need  int    // bytes to collect into buf before handling them
	buf   []byte // collected bytes
	skip  int64  // bytes to pass over
	block int64  // bytes of the current block so far (header and data), for its padding
	check int    // size of each block's check field
	err   error
}

const (
	xzStreamHeader = iota
	xzBlockStart
	xzBlockHeader
	xzChunk
	xzChunkRest
	xzAfterData
	xzDone
)

func newXZGuard(r io.Reader) *xzGuard {
	return &xzGuard{r: r, state: xzStreamHeader, need: 12}
}

func (g *xzGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	if ferr := g.feed(p[:n]); ferr != nil {
		g.err = fmt.Errorf("%w: xz data: %v", ErrFormat, ferr)
		return 0, g.err
	}
	return n, err
}

// feed walks b through the state machine.
func (g *xzGuard) feed(b []byte) error {
	for len(b) > 0 && g.state != xzDone {
		if g.skip > 0 {
			k := min(g.skip, int64(len(b)))
			g.skip -= k
			g.block += k
			b = b[k:]
			if g.skip == 0 && g.state == xzAfterData {
				g.state, g.need = xzBlockStart, 1
			}
			continue
		}
		k := min(g.need-len(g.buf), len(b))
		g.buf = append(g.buf, b[:k]...)
		b = b[k:]
		if g.state != xzStreamHeader && g.state != xzBlockStart {
			g.block += int64(k)
		}
		if len(g.buf) < g.need {
			continue
		}
		if err := g.step(); err != nil {
			return err
		}
	}
	return nil
}

// step handles the g.need bytes collected in g.buf.
func (g *xzGuard) step() error {
	buf := g.buf
	g.buf = g.buf[:0]
	switch g.state {
	case xzStreamHeader:
		g.check = checkSize(buf[7] & 0x0F)
		g.state, g.need = xzBlockStart, 1
	case xzBlockStart:
		if buf[0] == 0 { // the index: no more blocks in this stream
			g.state = xzDone
			return nil
		}
		g.block = 1
		g.state, g.need = xzBlockHeader, (int(buf[0])+1)*4-1
	case xzBlockHeader:
		if err := checkBlockHeader(buf); err != nil {
			return err
		}
		g.state, g.need = xzChunk, 1
	case xzChunk:
		c := buf[0]
		switch {
		case c == 0: // end of the block's data: padding to 4 bytes, then the check
			g.skip = (4-g.block%4)%4 + int64(g.check)
			g.state = xzAfterData
			if g.skip == 0 {
				g.state, g.need = xzBlockStart, 1
			}
			return nil
		case c == 1 || c == 2:
			g.need = 2
		case c >= 0xC0:
			g.need = 5
		case c >= 0x80:
			g.need = 4
		default:
			return fmt.Errorf("LZMA2 control byte %#x", c)
		}
		g.buf = append(g.buf, c) // kept to tell the chunk kinds apart
		g.need++
		g.state = xzChunkRest
	case xzChunkRest:
		if buf[0] < 0x80 { // uncompressed chunk: its size
			g.skip = int64(buf[1])<<8 | int64(buf[2]) + 1
		} else { // LZMA chunk: its packed size
			g.skip = int64(buf[3])<<8 | int64(buf[4]) + 1
		}
		g.state, g.need = xzChunk, 1
	}
	return nil
}

// checkSize is the size of the check field of check type t.
func checkSize(t byte) int {
	if t == 0 {
		return 0
	}
	return 4 << ((t - 1) / 3)
}

// checkBlockHeader reads a block header (after its size byte): its filters must end with LZMA2,
// whose dictionary is at most maxXZDict.
func checkBlockHeader(h []byte) error {
	flags, pos := h[0], 1
	varint := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9 && pos < len(h); i++ {
			c := h[pos]
			pos++
			v |= uint64(c&0x7F) << (7 * i)
			if c&0x80 == 0 {
				return v, nil
			}
		}
		return 0, fmt.Errorf("bad block header")
	}
	for _, bit := range []byte{0x40, 0x80} { // compressed and uncompressed sizes
		if flags&bit != 0 {
			if _, err := varint(); err != nil {
				return err
			}
		}
	}
	var last uint64
	for range int(flags&3) + 1 {
		id, err := varint()
		if err != nil {
			return err
		}
		size, err := varint()
		if err != nil || size > uint64(len(h)-pos) {
			return fmt.Errorf("bad block header")
		}
		props := h[pos : pos+int(size)]
		pos += int(size)
		if id == lzma2Filter {
			if len(props) != 1 || props[0] > 40 {
				return fmt.Errorf("bad LZMA2 properties")
			}
			if d := dictSize(props[0]); d > maxXZDict {
				return fmt.Errorf("a block asks for a %d MiB dictionary (at most %d MiB)", d>>20, maxXZDict>>20)
			}
		}
		last = id
	}
	if last != lzma2Filter {
		return fmt.Errorf("a block's last filter is %#x, not LZMA2", last)
	}
	return nil
}

const lzma2Filter = 0x21

// dictSize is the dictionary size an LZMA2 properties byte (0 to 40) names.
func dictSize(b byte) int64 {
	if b == 40 {
		return 1<<32 - 1
	}
	return int64(2|b&1) << (b/2 + 11)
}
