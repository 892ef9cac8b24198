package delta

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"

	librsync "github.com/balena-os/librsync-go"
)

// Magic numbers of the librsync formats (big-endian, first four bytes of a file).
const (
	// SigMagic starts the only signatures this package writes and reads: rollsum weak sums and
	// BLAKE2b strong sums, what `rdiff signature -R rollsum -H blake2` writes.
	SigMagic uint32 = 0x72730137
	// DeltaMagic starts a delta.
	DeltaMagic uint32 = 0x72730236

	// Magics of the signatures refused with ErrUnsupportedSignature. RabinKarp signatures are
	// rdiff's default since librsync 2.2 and librsync-go cannot match against them; MD4 strong
	// sums are refused because MD4 collisions are cheap: a crafted file on the VM could make
	// the converter rebuild different content than the VM holds.
	md4SigMagic      uint32 = 0x72730136
	rkMD4SigMagic    uint32 = 0x72730146
	rkBLAKE2SigMagic uint32 = 0x72730147
)

// Block and sum lengths.
const (
	// DefaultBlockLen is librsync's block length for a basis of unknown size (RS_DEFAULT_BLOCK_LEN).
	// When the size is known, BlockLen(size) is rdiff's choice and keeps signatures small.
	DefaultBlockLen = 2048
	// MaxBlockLen bounds the block length of a signature (BlockLen picks it for a 16 TiB file):
	// computing a delta holds two blocks in memory.
	MaxBlockLen = 4 << 20
	// StrongLen is the length of the BLAKE2b strong sums Signature writes: the full sum, as
	// rdiff writes by default (-S 0).
	StrongLen = librsync.BLAKE2_SUM_LENGTH

	headerLen = 12 // magic, block length, strong sum length
	weakLen   = 4
)

// Errors. Those from ParseSignature and Patch wrap one of them; errors of the underlying
// reader and writer are passed through, wrapped.
var (
	// ErrUnsupportedSignature is a signature whose format (magic number) this package does not
	// use: rdiff's default RabinKarp rolling sum, MD4 strong sums, or no librsync magic at all.
	ErrUnsupportedSignature = errors.New("unsupported signature")
	// ErrCorrupt is a malformed signature or delta: truncated, invalid parameters, a reserved
	// command, a copy beyond the end of the basis, or data after the end command.
	ErrCorrupt = errors.New("corrupt data")
	// ErrTooLarge is a signature larger than the caller's bound, a block length above
	// MaxBlockLen, or a delta whose output would exceed the caller's maximum.
	ErrTooLarge = errors.New("too large")
)

// Stats describe a delta: the size of the signature it was computed against, its own size, and
// how many bytes of the new file it carries (literals) or takes from the basis (copies).
type Stats struct {
	SignatureBytes int64 `json:"signature_bytes,omitempty"`
	DeltaBytes     int64 `json:"delta_bytes"`
	LiteralBytes   int64 `json:"literal_bytes"`
	CopiedBytes    int64 `json:"copied_bytes"`
}

// Add adds o's counts to s.
func (s *Stats) Add(o Stats) {
	s.SignatureBytes += o.SignatureBytes
	s.DeltaBytes += o.DeltaBytes
	s.LiteralBytes += o.LiteralBytes
	s.CopiedBytes += o.CopiedBytes
}

// BlockLen returns the block length rdiff picks for a basis of size bytes (librsync's
// rs_sig_args): 256 up to 64 KiB, then the square root rounded down to a multiple of 128, at most
// MaxBlockLen. A signature then has about sqrt(size) blocks: 36 KiB for a 1 GB basis. A negative
// size (unknown) gives DefaultBlockLen.
func BlockLen(size int64) uint32 {
	switch {
	case size < 0:
		return DefaultBlockLen
	case size <= 256*256:
		return 256
	}
	return uint32(min(isqrt(uint64(size))&^127, MaxBlockLen))
}

// BlockLenWithin returns BlockLen(size), raised as needed (to a multiple of 128) for the
// signature of a basis of size bytes to fit in maxSigSize bytes; 0 if no block length up to
// MaxBlockLen does. A signature request to an agent must fit in agent.MaxDeltaSignature: at
// BlockLen(size) that holds up to about 430 MB, at MaxBlockLen up to 87 GB.
func BlockLenWithin(size, maxSigSize int64) uint32 {
	bl := BlockLen(size)
	if size <= 0 || SignatureSize(size, bl) <= maxSigSize {
		return bl
	}
	blocks := (maxSigSize - headerLen) / (weakLen + StrongLen)
	if blocks <= 0 {
		return 0
	}
	need := ((size+blocks-1)/blocks + 127) &^ 127
	if need > MaxBlockLen {
		return 0
	}
	return uint32(need)
}

// SignatureSize is the size of the signature Signature writes for a basis of size bytes.
func SignatureSize(size int64, blockLen uint32) int64 {
	return headerLen + (size+int64(blockLen)-1)/int64(blockLen)*(weakLen+StrongLen)
}

// isqrt returns the floor of the square root of v.
func isqrt(v uint64) uint64 {
	var n uint64
	for b := uint64(1) << 31; b != 0; b >>= 1 {
		if m := n | b; m*m <= v {
			n = m
		}
	}
	return n
}

// Signature writes the signature of basis to w, as `rdiff signature -R rollsum -H blake2 -b
// blockLen -S 32` writes it, byte for byte. A blockLen of 0 picks BlockLen of the basis's size
// when basis tells it (an *os.File of a regular file, or a reader with a Size method such as
// *bytes.Reader), DefaultBlockLen otherwise, as rdiff does. Memory use is one block.
func Signature(ctx context.Context, basis io.Reader, w io.Writer, blockLen uint32) error {
	if blockLen == 0 {
		blockLen = BlockLen(sizeOf(basis))
	}
	if blockLen > MaxBlockLen {
		return fmt.Errorf("writing signature: block length %d: %w (at most %d)", blockLen, ErrTooLarge, MaxBlockLen)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var hdr [headerLen]byte
	binary.BigEndian.PutUint32(hdr[0:], SigMagic)
	binary.BigEndian.PutUint32(hdr[4:], blockLen)
	binary.BigEndian.PutUint32(hdr[8:], StrongLen)
	if _, err := bw.Write(hdr[:]); err != nil {
		return fmt.Errorf("writing signature: %w", err)
	}
	in := io.Reader(&ctxReader{ctx: ctx, r: basis})
	if blockLen < 64<<10 {
		in = bufio.NewReaderSize(in, 64<<10)
	}
	block := make([]byte, blockLen)
	for {
		n, err := io.ReadFull(in, block)
		if n > 0 {
			var rec [weakLen]byte
			binary.BigEndian.PutUint32(rec[:], librsync.WeakChecksum(block[:n]))
			strong, _ := librsync.CalcStrongSum(block[:n], librsync.BLAKE2_SIG_MAGIC, StrongLen)
			bw.Write(rec[:])
			if _, werr := bw.Write(strong); werr != nil {
				return fmt.Errorf("writing signature: %w", werr)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading basis: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing signature: %w", err)
	}
	return nil
}

// sizeOf returns the size basis reveals, or -1.
func sizeOf(basis io.Reader) int64 {
	switch b := basis.(type) {
	case interface{ Size() int64 }:
		return b.Size()
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := b.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return -1
}

// ctxReader stops reading once ctx is done, and never returns (0, nil): librsync-go takes an
// empty read for the end of its input.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for range 100 {
		if n, err := c.r.Read(p); n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}
