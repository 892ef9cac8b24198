package delta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	librsync "github.com/balena-os/librsync-go"
)

// Sig is a parsed signature, ready to compute deltas against. It is read-only: one Sig serves
// any number of deltas, concurrently.
type Sig struct {
	blockLen, strongLen uint32
	blocks              int
	size                int64
	rs                  *librsync.SignatureType
}

// BlockLen is the signature's block length.
func (s *Sig) BlockLen() uint32 { return s.blockLen }

// StrongLen is the length of its strong sums, in bytes.
func (s *Sig) StrongLen() uint32 { return s.strongLen }

// Blocks is the number of blocks of the basis.
func (s *Sig) Blocks() int { return s.blocks }

// Size is the signature's encoded size in bytes.
func (s *Sig) Size() int64 { return s.size }

// ParseSignature reads a whole signature from r, at most maxSize bytes of it, and checks it:
// its magic must be SigMagic (anything else is ErrUnsupportedSignature naming the magic), its
// block length 1..MaxBlockLen, its strong sum length 1..32, and its body whole block records.
// Memory use is a few times the signature's size, so maxSize bounds it.
func ParseSignature(r io.Reader, maxSize int64) (*Sig, error) {
	var hdr [headerLen]byte
	if n, err := io.ReadFull(r, hdr[:]); err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("reading signature: %w: %d bytes, shorter than a header", ErrCorrupt, n)
	} else if err != nil {
		return nil, fmt.Errorf("reading signature: %w", err)
	}
	magic := binary.BigEndian.Uint32(hdr[0:])
	blockLen := binary.BigEndian.Uint32(hdr[4:])
	strongLen := binary.BigEndian.Uint32(hdr[8:])
	if err := checkHeader(magic, blockLen, strongLen); err != nil {
		return nil, fmt.Errorf("reading signature: %w", err)
	}
	if maxSize < headerLen {
		return nil, fmt.Errorf("reading signature: %w: more than %d bytes", ErrTooLarge, maxSize)
	}
	var buf bytes.Buffer
	buf.Write(hdr[:])
	n, err := buf.ReadFrom(io.LimitReader(r, maxSize-headerLen+1))
	if err != nil {
		return nil, fmt.Errorf("reading signature: %w", err)
	}
	if n > maxSize-headerLen {
		return nil, fmt.Errorf("reading signature: %w: more than %d bytes", ErrTooLarge, maxSize)
	}
	rec := int64(weakLen + strongLen)
	if n%rec != 0 {
		return nil, fmt.Errorf("reading signature: %w: truncated: %d bytes after the header are not whole %d-byte block records",
			ErrCorrupt, n, rec)
	}
	rs, err := librsync.ReadSignature(bytes.NewReader(buf.Bytes()))
	if err != nil { // cannot happen on a checked buffer
		return nil, fmt.Errorf("reading signature: %w: %v", ErrCorrupt, err)
	}
	return &Sig{blockLen: blockLen, strongLen: strongLen, blocks: int(n / rec), size: headerLen + n, rs: rs}, nil
}

// checkHeader checks a signature header's fields.
func checkHeader(magic, blockLen, strongLen uint32) error {
	if magic != SigMagic {
		return unsupportedMagic(magic)
	}
	switch {
	case blockLen == 0:
		return fmt.Errorf("%w: block length 0", ErrCorrupt)
	case blockLen > MaxBlockLen:
		return fmt.Errorf("block length %d: %w (at most %d)", blockLen, ErrTooLarge, MaxBlockLen)
	case strongLen == 0 || strongLen > StrongLen:
		return fmt.Errorf("%w: strong sum length %d (BLAKE2 sums are 1 to %d bytes)", ErrCorrupt, strongLen, StrongLen)
	}
	return nil
}

// unsupportedMagic names a magic number that is not SigMagic. A number that is no librsync
// magic at all is also ErrCorrupt.
func unsupportedMagic(magic uint32) error {
	var what string
	switch magic {
	case rkBLAKE2SigMagic:
		what = "a RabinKarp+BLAKE2 signature, rdiff's default: make it with `rdiff signature -R rollsum -H blake2`"
	case rkMD4SigMagic:
		what = "a RabinKarp+MD4 signature: MD4 is insecure"
	case md4SigMagic:
		what = "an MD4 signature: MD4 is insecure"
	case DeltaMagic:
		what = "a delta, not a signature"
	default:
		return fmt.Errorf("%w: %w: magic %#08x is no librsync signature", ErrUnsupportedSignature, ErrCorrupt, magic)
	}
	return fmt.Errorf("%w: magic %#08x is %s", ErrUnsupportedSignature, magic, what)
}
