package fswalk

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrOutsideRoot is wrapped by errors for paths that resolve outside the root: "..", or
	// a symlink whose target is absolute or climbs out of the root.
	ErrOutsideRoot = errors.New("path outside the root")
	// ErrChanged is wrapped by per-path errors for files that changed while they were read:
	// grown, shrunk, modified, or replaced by another file.
	ErrChanged = errors.New("file changed while being read")
)

// PseudoPolicy says what a walk does with pseudo and network filesystems mounted inside the root.
type PseudoPolicy uint8

const (
	// PseudoSkip lists the mount point directory but not its contents (the default).
	PseudoSkip PseudoPolicy = iota
	// PseudoWalk walks pseudo and network filesystems like any other.
	PseudoWalk
)

// DefaultMountinfo is where the mounts of the calling process are read from.
const DefaultMountinfo = "/proc/self/mountinfo"

// Options controls a walk. The zero value walks everything but the contents of pseudo and
// network filesystems, without xattrs or digests, and skips paths that cannot be read.
type Options struct {
	// Excludes are anchored patterns such as "/var/cache/apt/archives/*.deb", "/tmp/*" or
	// "/home/*/.cache", matched by Match. A pattern without a leading "/" is anchored too: "tmp/*"
	// is "/tmp/*". An excluded directory is left out with its whole subtree.
	Excludes []string
	// Pseudo says whether the contents of pseudo and network filesystems are walked.
	Pseudo PseudoPolicy
	// MountinfoPath is the mountinfo file that tells which filesystems are mounted where;
	// DefaultMountinfo when empty. A file that cannot be read means no mounts are known; mount
	// points are then still recognised by their filesystem's magic number.
	MountinfoPath string
	// TreatAsMounts treats "proc", "sys", "dev" and "run" directly under the root as mount
	// points (listed, contents skipped) even when nothing is mounted there: for a root that
	// is not "/" and holds a VM's tree.
	TreatAsMounts bool
	// Xattrs reads extended attributes into Entry.Xattrs.
	Xattrs bool
	// Digest computes the sha256 of regular files into Entry.Digest ("sha256:<hex>"), reading
	// each inode once. A file that cannot be read, or changes while it is read, is reported and
	// its entry keeps an empty Digest. Digest is ignored by WriteTar and WriteFiles.
	Digest bool
	// OnError is called for per-path errors: a file that vanished, cannot be read, or changed
	// while it was read. It returns nil to skip the path (or the rest of it) and go on, or an
	// error that ends the walk and is returned. Nil skips every such path.
	OnError func(path string, err error) error

	hooks *testHooks // set only by tests
}

// testHooks let tests change the tree at precise moments of a walk.
type testHooks struct {
	beforeStat    func(path string) // after the directory was read, before the entry is stat'ed
	beforeOpen    func(path string) // before a regular file is opened for its contents
	beforeCopy    func(path string) // after a tar header was written, before the contents
	beforeOpenDir func(path string) // before a directory is opened to be read
}

// Stats counts what WriteTar or WriteFiles wrote.
type Stats struct {
	Entries        int64 // tar entries written
	Files          int64 // regular files written with their contents
	Dirs           int64
	Symlinks       int64
	Hardlinks      int64 // regular files written as links to an earlier entry
	Devices        int64 // character and block devices
	FIFOs          int64
	SocketsSkipped int64 // sockets cannot be archived
	Bytes          int64 // file contents written, padding included
	Errors         int64 // per-path errors passed to OnError (or skipped)
}

// errPath wraps err with a gerund and the path it happened to.
func errPath(op, p string, err error) error {
	return fmt.Errorf("%s %q: %w", op, p, err)
}

// HashResult is the digest of one file named to Hash, or why there is none.
type HashResult struct {
	Path   string `json:"path"`
	Digest string `json:"digest,omitempty"` // "sha256:<hex>"
	Size   int64  `json:"size"`
	Err    string `json:"error,omitempty"`
}
