package delta

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	librsync "github.com/balena-os/librsync-go"
)

// litBufs holds librsync-go's literal buffers: it wants exactly 16 MiB of capacity.
var litBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, librsync.OUTPUT_BUFFER_SIZE)
	return &b
}}

// Delta writes to w the delta that turns the basis of sig into newFile, in the format `rdiff
// patch` applies, and returns how many bytes of newFile it carries as literals. Memory use is
// two blocks plus up to 16 MiB of pending literals.
func Delta(ctx context.Context, sig *Sig, newFile io.Reader, w io.Writer) (literalBytes int64, err error) {
	st, err := DeltaStats(ctx, sig, newFile, w)
	return st.LiteralBytes, err
}

// DeltaStats is Delta returning all the delta's statistics.
func DeltaStats(ctx context.Context, sig *Sig, newFile io.Reader, w io.Writer) (Stats, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	c := &counter{w: bw, skip: 4}
	lit := litBufs.Get().(*[]byte)
	err := librsync.DeltaBuff(sig.rs, &ctxReader{ctx: ctx, r: newFile}, c, (*lit)[:0])
	litBufs.Put(lit)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && !c.ended {
		err = fmt.Errorf("%w: the delta has no end command", ErrCorrupt) // a bug, not input
	}
	st := c.st
	st.SignatureBytes = sig.size
	if err != nil {
		return st, fmt.Errorf("computing delta: %w", err)
	}
	return st, nil
}

// counter passes a delta through to w and counts its bytes and commands as they pass.
type counter struct {
	w     io.Writer
	st    Stats
	skip  int64 // bytes to pass uncounted: the magic, then literal data
	op    cmd
	param [16]byte
	need  int // parameter bytes still missing for op
	have  int
	ended bool
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.st.DeltaBytes += int64(n)
	c.scan(p[:n])
	return n, err
}

// scan follows the command structure of p.
func (c *counter) scan(p []byte) {
	for len(p) > 0 && !c.ended {
		switch {
		case c.skip > 0:
			k := min(c.skip, int64(len(p)))
			c.skip -= k
			p = p[k:]
		case c.need > 0:
			k := copy(c.param[c.have:c.have+c.need], p)
			c.have += k
			c.need -= k
			p = p[k:]
			if c.need == 0 {
				c.count(c.op.params(c.param[:c.have]))
			}
		default:
			c.op = decodeOp(p[0])
			p = p[1:]
			c.have, c.need = 0, int(c.op.len1+c.op.len2)
			if c.need == 0 {
				c.count(int64(c.op.imm), 0)
			}
		}
	}
}

// count records a complete command with its parameters.
func (c *counter) count(a, b int64) {
	switch c.op.kind {
	case kindEnd:
		c.ended = true
	case kindLiteral:
		c.st.LiteralBytes += a
		c.skip = a
	case kindCopy:
		c.st.CopiedBytes += b
	}
}

// Kinds of delta commands.
const (
	kindEnd = iota
	kindLiteral
	kindCopy
	kindReserved
)

// cmd is a decoded command byte: its kind, an immediate literal length, and the byte sizes of
// its parameters (a literal length; or a copy's position and length).
type cmd struct {
	kind, imm, len1, len2 uint8
}

// decodeOp decodes a command byte of librsync's delta format: 0 ends the delta, 1-64 are
// literals of that length, 0x41-0x44 literals with a 1, 2, 4 or 8-byte length, 0x45-0x54
// copies with 1, 2, 4 or 8-byte position and length; the rest are reserved.
func decodeOp(op byte) cmd {
	switch {
	case op == 0:
		return cmd{kind: kindEnd}
	case op <= 64:
		return cmd{kind: kindLiteral, imm: op}
	case op <= 0x44:
		return cmd{kind: kindLiteral, len1: 1 << (op - 0x41)}
	case op <= 0x54:
		i := op - 0x45
		return cmd{kind: kindCopy, len1: 1 << (i / 4), len2: 1 << (i % 4)}
	}
	return cmd{kind: kindReserved}
}

// params decodes the big-endian parameters in b, len1 then len2 bytes.
func (c cmd) params(b []byte) (a, l int64) {
	return int64(beUint(b[:c.len1])), int64(beUint(b[c.len1 : c.len1+c.len2]))
}

func beUint(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	return 0
}
