package diff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Strategy decides when a file counts as changed.
type Strategy string

// Strategies. See README.md for their rules.
const (
	// Rsync is rsync's quick check: type, size and mtime (whole seconds) decide content changes.
	Rsync Strategy = "rsync"
	// Checksum compares the contents of files of equal size by their digests; mtimes are ignored.
	Checksum Strategy = "checksum"
	// Rdiff is Checksum plus a block delta of each modified file, measured in DeltaBytes.
	Rdiff Strategy = "rdiff"
)

// Kind is what happened to a path between the old and the new tree.
type Kind string

// Change kinds.
const (
	Added       Kind = "added"        // only in the new tree
	Modified    Kind = "modified"     // contents, link target, device numbers or hard-link group changed
	Metadata    Kind = "metadata"     // only mode, owner, xattrs (or, for rsync, a non-file's mtime)
	Deleted     Kind = "deleted"      // only in the old tree; one change for a whole deleted subtree
	TypeChanged Kind = "type-changed" // a file became a directory, a directory a symlink, ...
	DirReplaced Kind = "dir-replaced" // a directory in both trees none of whose old entries is left
)

// Change is one changed path. Old and New are its entries in the old and the new tree, nil
// where it is absent.
type Change struct {
	Kind       Kind          `json:"kind"`
	Path       string        `json:"path"`
	Old        *fsmeta.Entry `json:"old,omitempty"`
	New        *fsmeta.Entry `json:"new,omitempty"`
	DeltaBytes int64         `json:"delta_bytes,omitempty"` // rdiff: size of the delta that turns Old's contents into New's

	// Old entries this change removes (a deleted subtree, a replaced directory's contents, a
	// directory that became something else) and their files' bytes, for the statistics.
	gone, goneBytes int64
}

// Problem is a path that could not be compared: unreadable, vanished or changed while read.
type Problem struct {
	Path string `json:"path"`
	Tree string `json:"tree"` // "old" or "new"
	Err  string `json:"error"`
}

// Options control Trees.
type Options struct {
	// Strategy is Rsync when empty.
	Strategy Strategy
	// Excludes are anchored patterns (fswalk.Match) left out of both trees.
	Excludes []string
	// Strict ends the comparison with an error at the first problem instead of skipping it.
	Strict bool
	// KeepSELinux compares and keeps security.selinux labels; they are dropped by default.
	KeepSELinux bool
	// OnError is called for each problem after it is recorded; a non-nil error ends the
	// comparison and is returned.
	OnError func(path string, err error) error
	// DeltaMinSize: with Rdiff, modified files smaller than this are sent whole (default 32 KiB).
	DeltaMinSize int64
	// HashBatch is how many files one Hash request names (default 256).
	HashBatch int
}

// DefaultDeltaMinSize is the default Options.DeltaMinSize.
const DefaultDeltaMinSize = 32 << 10

// Stats are the figures of a comparison, as the 2014 journal's tables carry them. Counts and
// bytes are those of entries, not of changes: Deleted and DeletedBytes include everything below
// a deleted or replaced directory, the way rsync lists deletions. Bytes are regular files' sizes.
type Stats struct {
	OldEntries     int64         `json:"old_entries"`
	NewEntries     int64         `json:"new_entries"`
	NewBytes       int64         `json:"new_bytes"` // the new tree's regular files
	Added          int64         `json:"added"`
	Modified       int64         `json:"modified"`
	Metadata       int64         `json:"metadata"`
	Deleted        int64         `json:"deleted"`
	TypeChanged    int64         `json:"type_changed"`
	DirReplaced    int64         `json:"dir_replaced"`
	AddedBytes     int64         `json:"added_bytes"`    // added files, and the new side of type changes
	ModifiedBytes  int64         `json:"modified_bytes"` // new sizes of modified files
	DeletedBytes   int64         `json:"deleted_bytes"`  // deleted files, and the old side of type changes
	MetadataBytes  int64         `json:"metadata_bytes"` // files a layer rewrites whole for a metadata-only change
	SocketsSkipped int64         `json:"sockets_skipped"`
	DeltaBytes     int64         `json:"delta_bytes"` // rdiff: sum of the changes' DeltaBytes
	Problems       int64         `json:"problems"`
	Duration       time.Duration `json:"duration_ns"`
}

// Result is the outcome of a comparison.
type Result struct {
	// Changes in walk order (fswalk.Walk's order: see ComparePaths).
	Changes []Change
	Stats   Stats
	// Problems, at most a few hundred; Stats.Problems counts them all.
	Problems []Problem
	// Parents are the new tree's entries of the unchanged directories above changes, in walk
	// order: a layer carries them so that its entries get their parents' metadata.
	Parents []*fsmeta.Entry
	// Links are the new tree's unchanged names of hard-link groups that have a changed name, in
	// walk order: a layer writes every name of such a group so the group survives.
	Links []*fsmeta.Entry
	// Strategy is the strategy used.
	Strategy Strategy
}

// Tree is what Trees reads a tree from; source.Source satisfies it.
type Tree interface {
	// Tree calls fn for every entry, in fswalk.Walk's order.
	Tree(ctx context.Context, args wire.TreeArgs, fn func(*fsmeta.Entry) error) (wire.TreeResult, error)
	// Hash returns the digests of the named regular files, in the order given.
	Hash(ctx context.Context, paths []string) ([]fswalk.HashResult, error)
}

// fileTree is what Rdiff needs of the old tree: its files' contents.
type fileTree interface {
	Files(ctx context.Context, args wire.TreeArgs) (source.TarStream, error)
}

// deltaTree is what Rdiff wants of the new tree: block deltas against a signature (else it
// computes them from the new tree's files).
type deltaTree interface {
	Delta(ctx context.Context, path string, signature []byte) (io.ReadCloser, error)
}

var _ Tree = source.Source(nil)

// ErrStrict wraps the error of a problem that ended a Strict comparison.
var ErrStrict = errors.New("problem in strict mode")

const maxProblems = 500

func (o *Options) applyDefaults() error {
	switch o.Strategy {
	case "":
		o.Strategy = Rsync
	case Rsync, Checksum, Rdiff:
	default:
		return fmt.Errorf("unknown diff strategy %q: want rsync, checksum or rdiff", o.Strategy)
	}
	if o.DeltaMinSize <= 0 {
		o.DeltaMinSize = DefaultDeltaMinSize
	}
	if o.HashBatch <= 0 {
		o.HashBatch = 256
	}
	return nil
}

// Trees compares the old tree with the new one and returns the changes that turn old into new.
// Both trees are walked at once and merged as they stream; only changes are kept. The root
// directory itself is not compared (a container's root is the runtime's).
func Trees(ctx context.Context, old, new Tree, opts Options) (*Result, error) {
	if err := opts.applyDefaults(); err != nil {
		return nil, err
	}
	if opts.Strategy == Rdiff {
		if _, ok := old.(fileTree); !ok {
			return nil, fmt.Errorf("comparing with rdiff: the old tree cannot send files")
		}
		_, dt := new.(deltaTree)
		if _, ft := new.(fileTree); !dt && !ft {
			return nil, fmt.Errorf("comparing with rdiff: the new tree can neither compute deltas nor send files")
		}
	}
	start := time.Now()
	m := newMerger(opts, old, new)
	if err := m.run(ctx); err != nil {
		return nil, err
	}
	res := m.result()
	res.Stats.Duration = time.Since(start)
	return res, nil
}
