package vmread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Version is the agent's version, reported by info.
var Version = "0.1.0-dev"

// Options configure a Reader.
type Options struct {
	// Root is the directory served as "/" (default "/").
	Root string
	// ProcDir is where processes are read from (default "/proc").
	ProcDir string
	// MountinfoPath overrides /proc/self/mountinfo (tests).
	MountinfoPath string
	// Logf receives per-path problems; default discards.
	Logf func(format string, args ...any)
}

// maxConcurrentDeltas bounds the deltas a Reader computes at once.
const maxConcurrentDeltas = 2

// Reader reads what the agent protocol asks of one root. It only reads.
type Reader struct {
	opts Options

	deltaSlots chan struct{} // bounds concurrent deltas (memory)
	digests    *fswalk.DigestMemo

	dbOnce sync.Once
	db     *pkgmgr.DB
	dbErr  error
}

// maxDigestMemo bounds the digests a Reader remembers (about 150 bytes each: 15 MB at most).
const maxDigestMemo = 100_000

// New returns a Reader of opts.Root.
func New(opts Options) (*Reader, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	abs, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("resolving root: %w", err)
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, fmt.Errorf("resolving root: %w", err)
	}
	opts.Root = abs
	if opts.ProcDir == "" {
		opts.ProcDir = "/proc"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Reader{opts: opts, deltaSlots: make(chan struct{}, maxConcurrentDeltas),
		digests: fswalk.NewDigestMemo(maxDigestMemo)}, nil
}

// Root returns the root directory read.
func (a *Reader) Root() string { return a.opts.Root }

// problems collects per-path errors, keeping the first few hundred.
type problems struct {
	mu    sync.Mutex
	list  []wire.Problem
	count int
	logf  func(string, ...any)
	// quietMissing keeps named paths the VM lacks out of the log (still in the list): a files
	// request asks for optional paths too (etc/apt/trusted.gpg, preferences), and their absence
	// is an answer, not an error.
	quietMissing bool
}

const maxProblems = 500

func (p *problems) add(path string, err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if len(p.list) < maxProblems {
		p.list = append(p.list, wire.Problem{Path: path, Err: err.Error()})
	}
	if p.quietMissing && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	p.logf("%s: %v", path, err)
	return nil
}

func (a *Reader) walkOptions(args wire.TreeArgs, p *problems) fswalk.Options {
	return fswalk.Options{
		Excludes:      args.Excludes,
		TreatAsMounts: a.opts.Root != "/",
		MountinfoPath: a.opts.MountinfoPath,
		Xattrs:        !args.NoXattrs,
		Digest:        args.Digest,
		OnError:       p.add,
	}
}

func (a *Reader) newProblems() *problems { return &problems{logf: a.opts.Logf} }

func (p *problems) result(st fswalk.Stats) wire.TreeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return wire.TreeResult{Stats: st, Problems: p.list, ProblemsTotal: p.count}
}

// Tree calls fn for every entry of the tree in walk order.
func (a *Reader) Tree(ctx context.Context, args wire.TreeArgs, fn func(*fsmeta.Entry) error) (wire.TreeResult, error) {
	p := a.newProblems()
	var st fswalk.Stats
	err := fswalk.Walk(ctx, a.opts.Root, a.walkOptions(args, p), func(e *fsmeta.Entry) error {
		st.Entries++
		return fn(e)
	})
	return p.result(st), err
}

// Filesystem writes the whole tree as an uncompressed tar stream to w.
func (a *Reader) Filesystem(ctx context.Context, args wire.TreeArgs, w io.Writer) (wire.TreeResult, error) {
	p := a.newProblems()
	st, err := fswalk.WriteTar(ctx, w, a.opts.Root, a.walkOptions(args, p))
	return p.result(st), err
}

// Files writes a tar stream of the named paths to w.
func (a *Reader) Files(ctx context.Context, args wire.TreeArgs, w io.Writer) (wire.TreeResult, error) {
	p := a.newProblems()
	p.quietMissing = true
	st, err := fswalk.WriteFiles(ctx, w, a.opts.Root, args.Paths, a.walkOptions(args, p), args.Recursive)
	return p.result(st), err
}

// Hash returns the content digests of the named paths. Digests are remembered for the Reader's
// life by file state (fswalk.DigestMemo): a warm conversion from the same agent hashes only
// files that changed.
func (a *Reader) Hash(ctx context.Context, paths []string) []fswalk.HashResult {
	return fswalk.HashMemo(ctx, a.opts.Root, paths, a.digests)
}

// Packages returns the installed-package database, read once per Reader.
func (a *Reader) Packages(ctx context.Context) (*pkgmgr.DB, error) {
	a.dbOnce.Do(func() { a.db, a.dbErr = pkgmgr.Read(ctx, a.opts.Root) })
	return a.db, a.dbErr
}

// Processes lists the processes running in the served root.
func (a *Reader) Processes(ctx context.Context, args wire.ProcessArgs) ([]procs.Process, error) {
	return procs.List(ctx, procs.Options{ProcDir: a.opts.ProcDir, Root: a.opts.Root, Env: args.Env, ListeningOnly: args.ListeningOnly})
}
