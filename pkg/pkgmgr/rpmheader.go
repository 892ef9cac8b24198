package pkgmgr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// rpm header tags read here (rpm's lib/rpmtag.h).
const (
	tagName           = 1000
	tagVersion        = 1001
	tagRelease        = 1002
	tagEpoch          = 1003
	tagSummary        = 1004
	tagSize           = 1009
	tagArch           = 1022
	tagOldFilenames   = 1027
	tagSourceRPM      = 1044
	tagProvideName    = 1047
	tagRequireFlags   = 1048
	tagRequireName    = 1049
	tagRequireVersion = 1050
	tagProvideFlags   = 1112
	tagProvideVersion = 1113
	tagDirIndexes     = 1116
	tagBasenames      = 1117
	tagDirnames       = 1118
	tagRecommendName  = 5046
	tagRecommendVer   = 5047
	tagRecommendFlags = 5048
	tagLongSize       = 5009
)

// rpm header data types.
const (
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeStringArray = 8
	typeI18NString  = 9
)

// Bounds from rpm's header.c (hdrchkTags, hdrchkData).
const (
	maxHeaderTags = 0xffff
	maxHeaderData = 256 << 20
)

var errBadHeader = errors.New("malformed rpm header")

type headerEntry struct {
	typ, count uint32
	offset     int
}

// rpmHeader is an rpm header blob as the rpmdb stores it: index count, data
// length, index entries of 16 bytes, then the data store.
type rpmHeader struct {
	entries map[uint32]headerEntry
	data    []byte
}

// parseRPMHeader indexes a header blob. Entries outside the immutable region
// (added at install time) come later in the index and win over earlier
// duplicates, as in rpm's headerImport.
func parseRPMHeader(blob []byte) (*rpmHeader, error) {
	if len(blob) < 8 {
		return nil, fmt.Errorf("%w: %d bytes", errBadHeader, len(blob))
	}
	il := binary.BigEndian.Uint32(blob[0:4])
	dl := binary.BigEndian.Uint32(blob[4:8])
	if il == 0 || il > maxHeaderTags || dl > maxHeaderData {
		return nil, fmt.Errorf("%w: %d tags, %d data bytes", errBadHeader, il, dl)
	}
	start := 8 + 16*int(il)
	if len(blob) < start+int(dl) {
		return nil, fmt.Errorf("%w: %d bytes, want %d", errBadHeader, len(blob), start+int(dl))
	}
	h := &rpmHeader{entries: make(map[uint32]headerEntry, il), data: blob[start : start+int(dl)]}
	for i := 0; i < int(il); i++ {
		e := blob[8+16*i : 8+16*(i+1)]
		off := binary.BigEndian.Uint32(e[8:12])
		if off > dl {
			return nil, fmt.Errorf("%w: entry %d: offset %d beyond %d data bytes", errBadHeader, i, off, dl)
		}
		h.entries[binary.BigEndian.Uint32(e[0:4])] = headerEntry{
			typ:    binary.BigEndian.Uint32(e[4:8]),
			offset: int(off),
			count:  binary.BigEndian.Uint32(e[12:16]),
		}
	}
	return h, nil
}

// strs returns the strings of a string, string-array or i18n-string tag;
// ok is false when the tag is absent.
func (h *rpmHeader) strs(tag uint32) (out []string, ok bool, err error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, false, nil
	}
	switch e.typ {
	case typeString, typeStringArray, typeI18NString:
	default:
		return nil, true, fmt.Errorf("%w: tag %d has type %d, not a string", errBadHeader, tag, e.typ)
	}
	n := int(e.count)
	if e.typ == typeString {
		n = 1
	}
	if n > len(h.data)-e.offset {
		return nil, true, fmt.Errorf("%w: tag %d: %d strings overrun the data", errBadHeader, tag, n)
	}
	out = make([]string, 0, n)
	rest := h.data[e.offset:]
	for ; n > 0; n-- {
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			return nil, true, fmt.Errorf("%w: tag %d: unterminated string", errBadHeader, tag)
		}
		out = append(out, string(rest[:end]))
		rest = rest[end+1:]
	}
	return out, true, nil
}

// str returns the first string of a tag, "" when absent.
func (h *rpmHeader) str(tag uint32) (string, error) {
	s, _, err := h.strs(tag)
	if err != nil || len(s) == 0 {
		return "", err
	}
	return s[0], nil
}

// ints returns the values of an int32 or int64 tag (int32 read unsigned, as
// rpm's sizes and flags are).
func (h *rpmHeader) ints(tag uint32) (out []int64, ok bool, err error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, false, nil
	}
	var size int
	switch e.typ {
	case typeInt32:
		size = 4
	case typeInt64:
		size = 8
	default:
		return nil, true, fmt.Errorf("%w: tag %d has type %d, not an integer", errBadHeader, tag, e.typ)
	}
	if int64(e.count)*int64(size) > int64(len(h.data)-e.offset) {
		return nil, true, fmt.Errorf("%w: tag %d: %d integers overrun the data", errBadHeader, tag, e.count)
	}
	out = make([]int64, e.count)
	b := h.data[e.offset:]
	for i := range out {
		if size == 4 {
			out[i] = int64(binary.BigEndian.Uint32(b[4*i:]))
		} else {
			out[i] = int64(binary.BigEndian.Uint64(b[8*i:]))
		}
	}
	return out, true, nil
}

// relations zips a name, flags and version tag triple into relations.
func (h *rpmHeader) relations(nameTag, flagsTag, versionTag uint32) ([]Relation, []int64, error) {
	names, _, err := h.strs(nameTag)
	if err != nil || len(names) == 0 {
		return nil, nil, err
	}
	flags, hasFlags, err := h.ints(flagsTag)
	if err != nil {
		return nil, nil, err
	}
	versions, hasVersions, err := h.strs(versionTag)
	if err != nil {
		return nil, nil, err
	}
	if !hasFlags { // very old headers list bare names
		flags = make([]int64, len(names))
	}
	if !hasVersions {
		versions = make([]string, len(names))
	}
	if len(flags) != len(names) || len(versions) != len(names) {
		return nil, nil, fmt.Errorf("%w: tag %d: %d names, %d flags, %d versions",
			errBadHeader, nameTag, len(names), len(flags), len(versions))
	}
	rels := make([]Relation, len(names))
	for i, n := range names {
		rels[i] = Relation{Name: n}
		if versions[i] != "" {
			rels[i].Op, rels[i].Version = rpmOp(flags[i]), versions[i]
		}
	}
	return rels, flags, nil
}

// rpm sense flags (rpm's lib/rpmds.h).
const (
	senseLess    = 1 << 1
	senseGreater = 1 << 2
	senseEqual   = 1 << 3
	senseRPMLib  = 1 << 24
)

func rpmOp(flags int64) string {
	var op string
	if flags&senseLess != 0 {
		op += "<"
	}
	if flags&senseGreater != 0 {
		op += ">"
	}
	if flags&senseEqual != 0 {
		op += "="
	}
	return op
}
