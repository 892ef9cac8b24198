package agent

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
)

// Version is the agent's version, reported by info and compared by the converter.
var Version = "0.1.0-dev"

// Options configure an Agent.
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

// maxConcurrentDeltas bounds the deltas an agent computes at once.
const maxConcurrentDeltas = 2

// Agent answers the requests of the protocol for one root. It only reads.
type Agent struct {
	opts Options

	deltaSlots chan struct{} // bounds concurrent deltas (memory)

	dbOnce sync.Once
	db     *pkgmgr.DB
	dbErr  error
}

// New returns an Agent serving opts.Root.
func New(opts Options) (*Agent, error) {
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
	return &Agent{opts: opts, deltaSlots: make(chan struct{}, maxConcurrentDeltas)}, nil
}

// Root returns the served root directory.
func (a *Agent) Root() string { return a.opts.Root }

// Problem is a per-path error met while walking or reading: reported, never fatal.
type Problem struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// problems collects per-path errors, keeping the first few hundred.
type problems struct {
	mu    sync.Mutex
	list  []Problem
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
		p.list = append(p.list, Problem{Path: path, Err: err.Error()})
	}
	if p.quietMissing && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	p.logf("%s: %v", path, err)
	return nil
}

// TreeArgs are the arguments of the tree, filesystem and files requests.
type TreeArgs struct {
	Excludes    []string `json:"excludes,omitempty"`
	NoXattrs    bool     `json:"no_xattrs,omitempty"`
	Digest      bool     `json:"digest,omitempty"`
	Compression string   `json:"compression,omitempty"` // zstd (default), gzip, none
	Level       int      `json:"level,omitempty"`
	Paths       Paths    `json:"paths,omitempty"` // files only
	Recursive   bool     `json:"recursive,omitempty"`
}

// TreeResult summarises a walk or a tar stream.
type TreeResult struct {
	Stats         fswalk.Stats `json:"stats"`
	Problems      []Problem    `json:"problems,omitempty"`
	ProblemsTotal int          `json:"problems_total,omitempty"`
}

func (a *Agent) walkOptions(args TreeArgs, p *problems) fswalk.Options {
	return fswalk.Options{
		Excludes:      args.Excludes,
		TreatAsMounts: a.opts.Root != "/",
		MountinfoPath: a.opts.MountinfoPath,
		Xattrs:        !args.NoXattrs,
		Digest:        args.Digest,
		OnError:       p.add,
	}
}

func (a *Agent) newProblems() *problems { return &problems{logf: a.opts.Logf} }

func (p *problems) result(st fswalk.Stats) TreeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return TreeResult{Stats: st, Problems: p.list, ProblemsTotal: p.count}
}

// Tree calls fn for every entry of the tree in walk order.
func (a *Agent) Tree(ctx context.Context, args TreeArgs, fn func(*fsmeta.Entry) error) (TreeResult, error) {
	p := a.newProblems()
	var st fswalk.Stats
	err := fswalk.Walk(ctx, a.opts.Root, a.walkOptions(args, p), func(e *fsmeta.Entry) error {
		st.Entries++
		return fn(e)
	})
	return p.result(st), err
}

// Filesystem writes the whole tree as an uncompressed tar stream to w.
func (a *Agent) Filesystem(ctx context.Context, args TreeArgs, w io.Writer) (TreeResult, error) {
	p := a.newProblems()
	st, err := fswalk.WriteTar(ctx, w, a.opts.Root, a.walkOptions(args, p))
	return p.result(st), err
}

// Files writes a tar stream of the named paths to w.
func (a *Agent) Files(ctx context.Context, args TreeArgs, w io.Writer) (TreeResult, error) {
	p := a.newProblems()
	p.quietMissing = true
	st, err := fswalk.WriteFiles(ctx, w, a.opts.Root, args.Paths, a.walkOptions(args, p), args.Recursive)
	return p.result(st), err
}

// Hash returns the content digests of the named paths.
func (a *Agent) Hash(ctx context.Context, paths []string) []fswalk.HashResult {
	return fswalk.Hash(ctx, a.opts.Root, paths)
}

// Packages returns the installed-package database, read once per agent.
func (a *Agent) Packages(ctx context.Context) (*pkgmgr.DB, error) {
	a.dbOnce.Do(func() { a.db, a.dbErr = pkgmgr.Read(ctx, a.opts.Root) })
	return a.db, a.dbErr
}

// ProcessArgs are the arguments of the processes request.
type ProcessArgs struct {
	Env           bool `json:"env,omitempty"`
	ListeningOnly bool `json:"listening_only,omitempty"`
}

// Processes lists the processes running in the served root.
func (a *Agent) Processes(ctx context.Context, args ProcessArgs) ([]procs.Process, error) {
	return procs.List(ctx, procs.Options{ProcDir: a.opts.ProcDir, Root: a.opts.Root, Env: args.Env, ListeningOnly: args.ListeningOnly})
}
