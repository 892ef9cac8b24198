package fsmeta

import (
	"io/fs"
	"sort"
)

// Type is the kind of a file-system entry.
type Type uint8

// Entry types. Hard links are regular files that share an Inode with another entry.
const (
	TypeRegular Type = iota + 1
	TypeDir
	TypeSymlink
	TypeCharDev
	TypeBlockDev
	TypeFIFO
	TypeSocket
)

var typeNames = [...]string{"", "file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket"}

func (t Type) String() string {
	if int(t) < len(typeNames) && t != 0 {
		return typeNames[t]
	}
	return "unknown"
}

// Valid reports whether t is one of the known types.
func (t Type) Valid() bool { return t >= TypeRegular && t <= TypeSocket }

// Entry describes one file of a tree without its contents.
//
// Path is slash-separated and relative to the tree's root, without a leading "./"; the root
// itself is ".". Paths are byte strings: they may hold any byte but NUL, valid UTF-8 or not.
type Entry struct {
	Path     string
	Type     Type
	Mode     uint32 // permission bits with setuid, setgid and sticky (07777)
	UID, GID uint32
	Size     int64 // regular files: content length; symlinks: target length
	MTime    int64 // nanoseconds since the Unix epoch
	Target   string
	DevMajor uint32
	DevMinor uint32
	Dev, Ino uint64 // identity of the inode: entries with the same (Dev, Ino) are hard links
	Nlink    uint32
	Xattrs   map[string][]byte
	Digest   string // "sha256:<hex>" of the contents, when known
}

// Mode bits beyond permissions.
const (
	ModeSetuid = 04000
	ModeSetgid = 02000
	ModeSticky = 01000
	ModePerm   = 07777
)

// FileMode converts the entry's type and mode to an fs.FileMode.
func (e *Entry) FileMode() fs.FileMode {
	m := fs.FileMode(e.Mode & 0777)
	if e.Mode&ModeSetuid != 0 {
		m |= fs.ModeSetuid
	}
	if e.Mode&ModeSetgid != 0 {
		m |= fs.ModeSetgid
	}
	if e.Mode&ModeSticky != 0 {
		m |= fs.ModeSticky
	}
	switch e.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlockDev:
		m |= fs.ModeDevice
	case TypeFIFO:
		m |= fs.ModeNamedPipe
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

// IsHardlinked reports whether other names may share this entry's inode.
func (e *Entry) IsHardlinked() bool { return e.Type == TypeRegular && e.Nlink > 1 }

// XattrNames returns the entry's extended-attribute names in sorted order.
func (e *Entry) XattrNames() []string {
	names := make([]string, 0, len(e.Xattrs))
	for k := range e.Xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
