package fsmeta

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/vm2image/vm2image/pkg/archive"
)

// TarHeader returns the PAX tar header of e, as an OCI layer or a root-filesystem archive holds
// it: the relative path without "./" (directories end in "/"), permission bits, numeric owners
// with empty user and group names, the mtime with its nanoseconds, the link target or device
// numbers, and each extended attribute as a "SCHILY.xattr.NAME" record. A regular file's Size
// is its content length; a hard link (TypeLink) is the caller's to make from a file's header.
// Sockets have no tar form: their header has Typeflag 0 and must not be written.
func (e *Entry) TarHeader() *tar.Header {
	h := &tar.Header{
		Format:  tar.FormatPAX,
		Name:    e.Path,
		Mode:    int64(e.Mode & ModePerm),
		Uid:     int(e.UID),
		Gid:     int(e.GID),
		ModTime: time.Unix(0, e.MTime),
	}
	switch e.Type {
	case TypeDir:
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case TypeRegular:
		h.Typeflag, h.Size = tar.TypeReg, e.Size
	case TypeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Target
	case TypeCharDev:
		h.Typeflag = tar.TypeChar
	case TypeBlockDev:
		h.Typeflag = tar.TypeBlock
	case TypeFIFO:
		h.Typeflag = tar.TypeFifo
	}
	if e.Type == TypeCharDev || e.Type == TypeBlockDev {
		h.Devmajor, h.Devminor = int64(e.DevMajor), int64(e.DevMinor)
	}
	if len(e.Xattrs) > 0 {
		h.PAXRecords = make(map[string]string, len(e.Xattrs))
		for k, v := range e.Xattrs {
			h.PAXRecords[archive.PAXXattrPrefix+k] = string(v)
		}
	}
	return h
}

// FromTarHeader returns the entry a tar header describes. The name is cleaned to a relative
// path without "./" ("." for the root); names that climb out with ".." are refused. A hard link
// (TypeLink) becomes a regular file whose Target is the (cleaned) name it links to and whose
// Size is 0: the caller resolves it. Extended attributes come from "SCHILY.xattr." records.
func FromTarHeader(h *tar.Header) (Entry, error) {
	name, err := cleanTarName(h.Name)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{
		Path:  name,
		Mode:  uint32(h.Mode) & ModePerm,
		UID:   uint32(h.Uid),
		GID:   uint32(h.Gid),
		MTime: h.ModTime.UnixNano(),
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		e.Type, e.Size = TypeRegular, h.Size
	case tar.TypeLink:
		e.Type = TypeRegular
		if e.Target, err = cleanTarName(h.Linkname); err != nil {
			return Entry{}, err
		}
	case tar.TypeDir:
		e.Type = TypeDir
	case tar.TypeSymlink:
		e.Type, e.Target, e.Size = TypeSymlink, h.Linkname, int64(len(h.Linkname))
	case tar.TypeChar, tar.TypeBlock:
		e.Type = TypeCharDev
		if h.Typeflag == tar.TypeBlock {
			e.Type = TypeBlockDev
		}
		e.DevMajor, e.DevMinor = uint32(h.Devmajor), uint32(h.Devminor)
	case tar.TypeFifo:
		e.Type = TypeFIFO
	default:
		return Entry{}, fmt.Errorf("reading tar entry %q: unsupported type %q", h.Name, h.Typeflag)
	}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, archive.PAXXattrPrefix); ok {
			if e.Xattrs == nil {
				e.Xattrs = map[string][]byte{}
			}
			e.Xattrs[name] = []byte(v)
		}
	}
	return e, nil
}

// cleanTarName turns a tar entry name into a clean relative path, "." for the root.
func cleanTarName(name string) (string, error) {
	p := path.Clean("/" + name)
	if strings.Contains(name, "\x00") {
		return "", fmt.Errorf("reading tar entry %q: NUL byte in name", name)
	}
	for _, c := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
		if c == ".." {
			return "", fmt.Errorf("reading tar entry %q: name climbs out of the root", name)
		}
	}
	if p == "/" {
		return ".", nil
	}
	return p[1:], nil
}
