// Package difftest builds file trees for the tests of the diff engine and of the layers made from it.
package difftest

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// MTime is the mtime of every node that does not set its own, so that two trees built from the
// same description compare equal under every strategy.
var MTime = time.Unix(1_600_000_000, 123456789)

// Tree maps slash paths, relative to the tree's root, to nodes. Missing parent directories are
// created with mode 0755, owner root and MTime.
type Tree map[string]Node

// Node is one of File, Dir, Symlink, Hardlink, FIFO, Device and Socket.
type Node interface{ node() }

// Owner is a numeric owner; nil means the building process's.
type Owner struct{ UID, GID int }

// Meta is what most nodes may set besides their contents. Zero values mean defaults.
type Meta struct {
	Mode   os.FileMode // permission bits and setuid/setgid/sticky; 0644 (files) or 0755 (dirs)
	Owner  *Owner
	Xattrs map[string]string
	MTime  time.Time
}

type (
	// File is a regular file. Sparse > 0 makes a file of that size, holes and then Content.
	File struct {
		Content string
		Sparse  int64
		Caps    string // setcap's argument, e.g. "cap_net_raw+ep"
		Meta
	}
	// Dir is a directory with explicit metadata.
	Dir struct{ Meta }
	// Symlink is a symbolic link; its Mode is ignored.
	Symlink struct {
		Target string
		Meta
	}
	// Hardlink is another name of the File at Target (a path of the same tree).
	Hardlink struct{ Target string }
	// FIFO is a named pipe.
	FIFO struct{ Meta }
	// Device is a character or block device.
	Device struct {
		Block        bool
		Major, Minor uint32
		Meta
	}
	// Socket is a unix socket file.
	Socket struct{ Meta }
)

func (File) node()     {}
func (Dir) node()      {}
func (Symlink) node()  {}
func (Hardlink) node() {}
func (FIFO) node()     {}
func (Device) node()   {}
func (Socket) node()   {}

// Build creates tree under dir, which must exist. Hard links are made after everything else;
// mtimes are set last, deepest first, the root's included. Paths may be longer than PATH_MAX:
// everything is made relative to open directories.
func Build(t testing.TB, dir string, tree Tree) {
	t.Helper()
	b := builder{t: t, root: dir, meta: map[string]Meta{".": {}}}
	paths := make([]string, 0, len(tree))
	for p := range tree {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int { return strings.Compare(depthKey(a), depthKey(b)) })
	var links []string
	for _, p := range paths {
		b.parents(p)
		if _, ok := tree[p].(Hardlink); ok {
			links = append(links, p)
			continue
		}
		b.create(p, tree[p])
	}
	for _, p := range links {
		dfd, base := b.at(parentOf(tree[p].(Hardlink).Target), baseOf(tree[p].(Hardlink).Target))
		nfd, nbase := b.at(parentOf(p), baseOf(p))
		b.check("linking "+p, unix.Linkat(dfd, base, nfd, nbase, 0))
		unix.Close(dfd)
		unix.Close(nfd)
	}
	b.times()
}

// depthKey sorts parents before children.
func depthKey(p string) string { return strconv.Itoa(1000+strings.Count(p, "/")) + p }

type builder struct {
	t    testing.TB
	root string
	meta map[string]Meta // every directory and node made, for the mtimes
}

func (b *builder) check(what string, err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("building test tree: %s: %v", what, err)
	}
}

// parents makes the missing directories above p.
func (b *builder) parents(p string) {
	var dirs []string
	for d := parentOf(p); d != "."; d = parentOf(d) {
		if _, ok := b.meta[d]; ok {
			break
		}
		dirs = append(dirs, d)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		fd, base := b.at(parentOf(dirs[i]), baseOf(dirs[i]))
		err := unix.Mkdirat(fd, base, 0o755)
		unix.Close(fd)
		if err != nil && err != unix.EEXIST {
			b.check("making "+dirs[i], err)
		}
		b.meta[dirs[i]] = Meta{}
	}
}

// at opens the directory dir (relative to the root) and returns it with base.
func (b *builder) at(dir, base string) (int, string) {
	fd, err := unix.Open(b.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	b.check("opening "+b.root, err)
	if dir == "." {
		return fd, base
	}
	for _, c := range strings.Split(dir, "/") {
		nfd, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		b.check("opening "+dir, err)
		fd = nfd
	}
	return fd, base
}

// create makes one node and applies its metadata.
func (b *builder) create(p string, n Node) {
	fd, base := b.at(parentOf(p), baseOf(p))
	defer unix.Close(fd)
	var m Meta
	switch n := n.(type) {
	case File:
		m = withMode(n.Meta, 0o644)
		b.writeFile(fd, base, p, n)
	case Dir:
		m = withMode(n.Meta, 0o755)
		err := unix.Mkdirat(fd, base, 0o700)
		if err != unix.EEXIST {
			b.check("making "+p, err)
		}
	case Symlink:
		m = n.Meta
		b.check("making "+p, unix.Symlinkat(n.Target, fd, base))
	case FIFO:
		m = withMode(n.Meta, 0o644)
		b.check("making "+p, unix.Mkfifoat(fd, base, 0o600))
	case Device:
		m = withMode(n.Meta, 0o600)
		kind := uint32(unix.S_IFCHR)
		if n.Block {
			kind = unix.S_IFBLK
		}
		b.check("making "+p, unix.Mknodat(fd, base, kind|0o600, int(unix.Mkdev(n.Major, n.Minor))))
	case Socket:
		m = withMode(n.Meta, 0o755)
		b.check("making "+p, unix.Mknodat(fd, base, unix.S_IFSOCK|0o600, 0))
	}
	b.meta[p] = m
	b.apply(fd, base, p, m, n)
}

func withMode(m Meta, mode os.FileMode) Meta {
	if m.Mode == 0 {
		m.Mode = mode
	}
	return m
}

func (b *builder) writeFile(dirfd int, base, p string, n File) {
	fd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	b.check("creating "+p, err)
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	off := int64(0)
	if n.Sparse > 0 {
		b.check("truncating "+p, f.Truncate(n.Sparse))
		off = n.Sparse - int64(len(n.Content))
	}
	_, err = f.WriteAt([]byte(n.Content), off)
	b.check("writing "+p, err)
}

// apply sets owner, mode, xattrs and capabilities, in the order that keeps them all (chown
// clears setuid bits and capabilities).
func (b *builder) apply(dirfd int, base, p string, m Meta, n Node) {
	_, isLink := n.(Symlink)
	if m.Owner != nil {
		b.check("chown "+p, unix.Fchownat(dirfd, base, m.Owner.UID, m.Owner.GID, unix.AT_SYMLINK_NOFOLLOW))
	}
	if !isLink {
		b.check("chmod "+p, unix.Fchmodat(dirfd, base, uint32(m.Mode.Perm())|specialBits(m.Mode), 0))
	}
	proc := "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + base
	for k, v := range m.Xattrs {
		b.check("setting xattr "+k+" on "+p, unix.Lsetxattr(proc, k, []byte(v), 0))
	}
	if f, ok := n.(File); ok && f.Caps != "" {
		// setcap runs in another process: name our descriptor through our pid.
		path := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(dirfd) + "/" + base
		if out, err := exec.Command("setcap", f.Caps, path).CombinedOutput(); err != nil {
			b.t.Fatalf("building test tree: setcap %s %s: %v\n%s", f.Caps, p, err, out)
		}
	}
}

func specialBits(m os.FileMode) uint32 {
	var bits uint32
	if m&os.ModeSetuid != 0 {
		bits |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		bits |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		bits |= unix.S_ISVTX
	}
	return bits
}

// times sets every mtime, deepest first so that nothing made later changes a directory's.
func (b *builder) times() {
	paths := make([]string, 0, len(b.meta))
	for p := range b.meta {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(x, y string) int { return strings.Compare(depthKey(y), depthKey(x)) })
	for _, p := range paths {
		mt := b.meta[p].MTime
		if mt.IsZero() {
			mt = MTime
		}
		ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		fd, base := b.at(parentOf(p), baseOf(p))
		if p == "." {
			base = "."
		}
		b.check("setting mtime of "+p, unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW))
		unix.Close(fd)
	}
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

func baseOf(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// LongPath returns a relative path of exactly n bytes (n > len(prefix)+2) under prefix, in
// components of at most 200 bytes.
func LongPath(prefix string, n int) string {
	var sb strings.Builder
	sb.WriteString(prefix)
	for i := 0; n-sb.Len() > 201; i++ {
		sb.WriteString("/" + strings.Repeat(string(rune('a'+i%26)), 200))
	}
	sb.WriteString("/" + strings.Repeat("z", n-sb.Len()-1))
	return sb.String()
}
