package rpmfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrFormat marks a file that is not a well-formed RPM package.
var ErrFormat = errors.New("not an RPM package")

const (
	leadSize = 96
	// maxIndex and maxStore bound a header: rpm itself allows 65535 tags and 256 MiB of data;
	// the main header of the largest distribution packages holds a few MiB.
	maxIndex    = 0xffff
	maxStore    = 64 << 20
	maxSigStore = 16 << 20 // the signature header: digests and signatures, skipped
)

var (
	leadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

// Header tags and types read here (rpmtag.h).
const (
	tagName              = 1000
	tagVersion           = 1001
	tagRelease           = 1002
	tagEpoch             = 1003
	tagArch              = 1022
	tagPayloadFormat     = 1124
	tagPayloadCompressor = 1125

	typeInt32  = 4
	typeString = 6
)

// header is a header's index and data store.
type header struct {
	index []byte // 16 bytes per entry: tag, type, offset, count
	store []byte
}

// readHeader reads a header structure (magic, counts, index, store) bounded by maxStore; the
// buffers grow with what is read, not with what is declared.
func readHeader(r io.Reader, maxData uint32) (*header, error) {
	var pre [16]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("%w: truncated header", ErrFormat)
	}
	if !bytes.Equal(pre[:4], headerMagic) {
		return nil, fmt.Errorf("%w: bad header magic", ErrFormat)
	}
	n, size := binary.BigEndian.Uint32(pre[8:12]), binary.BigEndian.Uint32(pre[12:16])
	if n == 0 || n > maxIndex || size > maxData {
		return nil, fmt.Errorf("%w: a header of %d tags and %d bytes (at most %d and %d)", ErrFormat, n, size, maxIndex, maxData)
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(n)*16+int64(size)))
	if err != nil || len(b) != int(n)*16+int(size) {
		return nil, fmt.Errorf("%w: truncated header", ErrFormat)
	}
	return &header{index: b[:n*16], store: b[n*16:]}, nil
}

// entry finds tag in the index: its type, its data from its offset, and its count.
func (h *header) entry(tag uint32) (typ uint32, data []byte, count uint32, ok bool) {
	for i := 0; i+16 <= len(h.index); i += 16 {
		e := h.index[i : i+16]
		if binary.BigEndian.Uint32(e[0:4]) != tag {
			continue
		}
		off := binary.BigEndian.Uint32(e[8:12])
		if off >= uint32(len(h.store)) {
			return 0, nil, 0, false
		}
		return binary.BigEndian.Uint32(e[4:8]), h.store[off:], binary.BigEndian.Uint32(e[12:16]), true
	}
	return 0, nil, 0, false
}

// str is tag's string value, "" when it is missing or not one string.
func (h *header) str(tag uint32) string {
	typ, data, _, ok := h.entry(tag)
	if !ok || typ != typeString {
		return ""
	}
	s, _, ok := bytes.Cut(data, []byte{0})
	if !ok {
		return ""
	}
	return string(s)
}

// int32 is tag's first int32 value; ok is false when it is missing or not an int32.
func (h *header) int32(tag uint32) (int64, bool) {
	typ, data, count, ok := h.entry(tag)
	if !ok || typ != typeInt32 || count < 1 || len(data) < 4 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint32(data[:4])), true
}

// identity reads name, version (EPOCH:VERSION-RELEASE, as the rpm database reader writes it)
// and arch.
func (h *header) identity() (name, version, arch string, err error) {
	name, ver, rel, arch := h.str(tagName), h.str(tagVersion), h.str(tagRelease), h.str(tagArch)
	if name == "" || ver == "" || arch == "" {
		return "", "", "", fmt.Errorf("%w: a header without name, version or arch", ErrFormat)
	}
	version = ver
	if rel != "" {
		version += "-" + rel
	}
	if epoch, ok := h.int32(tagEpoch); ok && epoch > 0 {
		version = strconv.FormatInt(epoch, 10) + ":" + version
	}
	return name, version, arch, nil
}

// readLead reads the lead and the signature header (skipped, with its padding to 8 bytes).
func readLead(r io.Reader) error {
	lead := make([]byte, leadSize)
	if _, err := io.ReadFull(r, lead); err != nil || !bytes.Equal(lead[:4], leadMagic) {
		return fmt.Errorf("%w: no rpm lead", ErrFormat)
	}
	var pre [16]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil || !bytes.Equal(pre[:4], headerMagic) {
		return fmt.Errorf("%w: no signature header", ErrFormat)
	}
	n, size := binary.BigEndian.Uint32(pre[8:12]), binary.BigEndian.Uint32(pre[12:16])
	if n > maxIndex || size > maxSigStore {
		return fmt.Errorf("%w: a signature header of %d tags and %d bytes", ErrFormat, n, size)
	}
	skip := int64(n)*16 + int64(size)
	skip += (8 - (16+skip)%8) % 8
	if k, err := io.CopyN(io.Discard, r, skip); err != nil || k != skip {
		return fmt.Errorf("%w: truncated signature header", ErrFormat)
	}
	return nil
}
