package delta

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Patch applies delta (ours, or one `rdiff delta` wrote) to basis and writes the new file to w,
// at most maxOut bytes of it (a negative maxOut: no bound, for trusted deltas only). It returns
// the bytes written. Every command is checked before it writes anything: a reserved command, a
// copy beyond the end of the basis, a truncated delta or data after its end command is
// ErrCorrupt; output beyond maxOut is ErrTooLarge. Memory use is fixed (two 64 KiB buffers).
func Patch(ctx context.Context, basis io.ReaderAt, delta io.Reader, w io.Writer, maxOut int64) (int64, error) {
	st, err := PatchStats(ctx, basis, delta, w, maxOut)
	return st.LiteralBytes + st.CopiedBytes, err
}

// PatchStats is Patch returning the delta's statistics.
func PatchStats(ctx context.Context, basis io.ReaderAt, delta io.Reader, w io.Writer, maxOut int64) (Stats, error) {
	if maxOut < 0 {
		maxOut = math.MaxInt64
	}
	p := &patcher{ctx: ctx, basis: basis, cr: countReader{r: &ctxReader{ctx: ctx, r: delta}}, w: w, room: maxOut,
		buf: make([]byte, 64<<10)}
	p.in = bufio.NewReaderSize(&p.cr, 64<<10)
	err := p.run()
	p.st.DeltaBytes = p.pos()
	if err != nil {
		return p.st, fmt.Errorf("applying delta: %w", err)
	}
	return p.st, nil
}

type patcher struct {
	ctx   context.Context
	basis io.ReaderAt
	cr    countReader
	in    *bufio.Reader
	w     io.Writer
	room  int64 // output still allowed
	buf   []byte
	st    Stats
	off   int64 // offset of the current command in the delta
}

func (p *patcher) run() error {
	var magic [4]byte
	if _, err := io.ReadFull(p.in, magic[:]); err != nil {
		return p.short(err, "magic number")
	}
	if m := binary.BigEndian.Uint32(magic[:]); m != DeltaMagic {
		return fmt.Errorf("%w: magic %#08x is not a delta's (%#08x)", ErrCorrupt, m, DeltaMagic)
	}
	for {
		p.off = p.pos()
		op, err := p.in.ReadByte()
		if err != nil {
			return p.short(err, "command")
		}
		c := decodeOp(op)
		a, b, err := p.params(c)
		if err != nil {
			return err
		}
		switch c.kind {
		case kindEnd:
			return p.end()
		case kindLiteral:
			err = p.literal(a)
		case kindCopy:
			err = p.copy(a, b)
		default:
			err = fmt.Errorf("%w: reserved command %#02x at offset %d", ErrCorrupt, op, p.off)
		}
		if err != nil {
			return err
		}
	}
}

// params reads the parameters of c: a literal's length, or a copy's position and length.
func (p *patcher) params(c cmd) (a, b int64, err error) {
	if c.len1 == 0 {
		return int64(c.imm), 0, nil
	}
	var raw [16]byte
	n := int(c.len1 + c.len2)
	if _, err := io.ReadFull(p.in, raw[:n]); err != nil {
		return 0, 0, p.short(err, "command parameters")
	}
	a, b = c.params(raw[:n])
	if a < 0 || b < 0 {
		return 0, 0, fmt.Errorf("%w: negative parameter of the command at offset %d", ErrCorrupt, p.off)
	}
	return a, b, nil
}

// reserve checks that n more bytes may be written.
func (p *patcher) reserve(n int64) error {
	if n > p.room {
		return fmt.Errorf("command at offset %d writes %d bytes: output %w (%d bytes left of the maximum)", p.off, n, ErrTooLarge, p.room)
	}
	p.room -= n
	return nil
}

// literal copies n bytes of the delta to the output.
func (p *patcher) literal(n int64) error {
	if err := p.reserve(n); err != nil {
		return err
	}
	for n > 0 {
		k, err := io.ReadFull(p.in, p.buf[:min(n, int64(len(p.buf)))])
		if err != nil {
			return p.short(err, "literal data")
		}
		if err := p.write(p.buf[:k]); err != nil {
			return err
		}
		p.st.LiteralBytes += int64(k)
		n -= int64(k)
	}
	return nil
}

// copy copies n bytes of the basis at pos to the output.
func (p *patcher) copy(pos, n int64) error {
	if pos > math.MaxInt64-n {
		return fmt.Errorf("%w: copy at offset %d: position %d + length %d overflows", ErrCorrupt, p.off, pos, n)
	}
	if err := p.reserve(n); err != nil {
		return err
	}
	for n > 0 {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		want := p.buf[:min(n, int64(len(p.buf)))]
		k, err := p.basis.ReadAt(want, pos)
		if k < len(want) {
			if err == nil || err == io.EOF {
				return fmt.Errorf("%w: copy at offset %d reads beyond the end of the basis (byte %d)", ErrCorrupt, p.off, pos+int64(k))
			}
			return fmt.Errorf("reading basis: %w", err)
		}
		if err := p.write(want); err != nil {
			return err
		}
		p.st.CopiedBytes += int64(k)
		pos += int64(k)
		n -= int64(k)
	}
	return nil
}

// pos is the offset in the delta of the next byte to decode.
func (p *patcher) pos() int64 { return p.cr.n - int64(p.in.Buffered()) }

func (p *patcher) write(b []byte) error {
	if _, err := p.w.Write(b); err != nil {
		return fmt.Errorf("writing new file: %w", err)
	}
	return nil
}

// end checks that nothing follows the end command.
func (p *patcher) end() error {
	switch _, err := p.in.ReadByte(); {
	case err == nil:
		return fmt.Errorf("%w: data after the end command at offset %d", ErrCorrupt, p.off)
	case err != io.EOF:
		return fmt.Errorf("reading delta: %w", err)
	}
	return nil
}

// short turns a read error into ErrCorrupt if the delta ended early.
func (p *patcher) short(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated: no %s at offset %d", ErrCorrupt, what, p.off)
	}
	return fmt.Errorf("reading delta: %w", err)
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
