package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vm2image/vm2image/internal/tailbuf"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// backend is where a plan runs: a chroot on an overlay of the base root, or a container.
type backend interface {
	// run runs argv in the build root with exactly env; out receives its output. A non-zero
	// exit is an *exitError.
	run(ctx context.Context, argv, env []string, out io.Writer) error
	// setNetwork gives the next commands the host's network (on) or none but loopback.
	setNetwork(ctx context.Context, on bool) error
	// writeFile, rename, remove and exists act on absolute paths inside the build root.
	writeFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error
	rename(ctx context.Context, from, to string) error
	remove(ctx context.Context, p string) error
	exists(ctx context.Context, p string) (bool, error)
	// readDB reads the build root's package database.
	readDB(ctx context.Context) (*pkgmgr.DB, error)
	// tree stops everything in the build root and returns the built tree as a host directory.
	tree(ctx context.Context) (string, error)
	// close releases the backend (mounts, container); the tree is gone afterwards.
	close() error
}

// baseEnv is the environment every step starts from.
var baseEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LC_ALL=C", "LANG=C", "HOME=/root", "TERM=dumb"}

// build is one build in progress.
type build struct {
	in      Input
	opts    Options
	be      backend
	res     *Result
	workDir string
	env     []string // added to every step's environment (LD_PRELOAD)
	temps   []temp   // files placed for the build only, removed before the diff
	// transient is set by errors that may not happen again (a repository that does not
	// answer): such a build is not cached.
	transient bool
	repoDown  bool // a repository did not answer
	retries   int  // install lines run by bisection
	// archives is the build's private apt archive directory ("" without one); published is
	// set once its first download has been shared (see archives.go).
	archives  string
	published bool
	outside   bool // the host's installer runs pointed at the root (outside.go)
}

// temp is a file placed in the build root for the build only; saved is where the base's file
// of the same path waits to be put back, or "".
type temp struct{ path, saved string }

// buildEntry builds the layer of key (whose exclusive lock the caller holds) and caches it.
func buildEntry(ctx context.Context, in Input, opts Options, key string, lock *fileLock) (*Result, func() error, error) {
	workDir, err := os.MkdirTemp(opts.WorkDir, "vm2image-build-")
	if err != nil {
		return nil, nil, fmt.Errorf("creating work directory: %w", err)
	}
	b := &build{in: in, opts: opts, workDir: workDir,
		res: &Result{CacheKey: key, RootsBefore: in.Plan.RootsBefore, RootsAfter: in.Plan.RootsAfter}}
	cleanup := func() error {
		var err error
		if b.be != nil {
			err = b.be.close()
		}
		return errors.Join(err, removeTree(workDir))
	}
	if err := b.run(ctx); err != nil {
		_ = cleanup()
		return nil, nil, err
	}
	if err := b.store(ctx, key, lock); err != nil {
		_ = cleanup()
		return nil, nil, err
	}
	return b.res, cleanup, nil
}

// run starts the backend, installs, and leaves the built tree ready for the diff.
func (b *build) run(ctx context.Context) error {
	archives, err := b.seedArchives()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.start(ctx, archives); err != nil {
		return err
	}
	if err := b.install(ctx); err != nil {
		return err
	}
	b.res.InstallTime = time.Since(start)
	b.opts.Logf("installed in %s: %d missing, %d at another version, %d errors", b.res.InstallTime.Round(time.Millisecond),
		len(b.res.Missing), len(b.res.VersionDiffers), len(b.res.Errors))
	return b.restore(ctx)
}

// start starts the backend (archives: seedArchives' directory) and prepares the build root
// (the VM's repository files, the build's own settings).
func (b *build) start(ctx context.Context, archives string) error {
	// Each constructor returns a typed nil on error: b.be stays a nil interface then, so the
	// cleanup does not close a backend that was never made.
	switch b.opts.Backend {
	case Docker:
		d, derr := newDocker(ctx, b.in.BaseImage, archives, b.workDir, b.in.Plan.Manager, b.opts.Logf)
		if derr != nil {
			return derr
		}
		b.be = d
	default:
		c, cerr := b.newChroot(archives)
		if cerr != nil {
			return cerr
		}
		b.be = c
	}
	return b.prepare(ctx)
}

// newChroot starts the chroot backend, wrapped to run the host's installer from outside the
// root when the base has none (outside.go).
func (b *build) newChroot(archives string) (backend, error) {
	c, err := newChroot(b.in.BaseRoot, filepath.Join(b.workDir, "overlay"), archives, b.opts.unsandboxed, b.opts.Logf)
	if err != nil {
		return nil, err
	}
	b.res.Installer = "in the base root (" + b.in.Plan.Frontend + ")"
	if b.opts.unsandboxed || !runsOutside(b.in.BaseRoot, b.in.Plan) {
		return c, nil
	}
	o, err := newOutside(c, b.workDir, b.in.BaseRoot, b.in.OS, b.opts.Logf)
	if err != nil {
		_ = c.close()
		return nil, err
	}
	b.outside = true
	b.res.Installer = "from outside the base root (the host's " + b.in.Plan.Frontend + ")"
	return o, nil
}

// seedArchives prepares the private apt archive directory, to bind at /var/cache/apt/archives;
// "" when there is none. pacman and rpm builds get a private archive directory of their own,
// not bound (pkgfiles.go).
func (b *build) seedArchives() (string, error) {
	if b.opts.AptArchiveCache == "" {
		return "", nil
	}
	if packageCaches[b.in.Plan.Manager] != nil && b.opts.Backend != Docker {
		b.archives = filepath.Join(b.workDir, "archives")
		return "", os.MkdirAll(b.archives, 0o700)
	}
	if b.in.Plan.Manager != pkgmgr.Dpkg {
		return "", nil
	}
	dir := filepath.Join(b.workDir, "archives")
	shared := filepath.Join(b.opts.AptArchiveCache, archiveShareKey(b.in))
	if err := seedArchives(shared, dir, userID(b.in.BaseRoot, "_apt")); err != nil {
		return "", err
	}
	b.archives = dir
	return dir, nil
}

// install runs the plan, then a follow-up for what is still missing, and records the outcome.
func (b *build) install(ctx context.Context) error {
	if err := b.runPlan(ctx, b.in.Plan); err != nil {
		return err
	}
	db, err := b.be.readDB(ctx)
	if err != nil {
		return fmt.Errorf("reading the build root's packages: %w", err)
	}
	missing, differs, follow := pkgmgr.FollowUpWith(b.in.VM, db, b.in.Plan.Frontend)
	if len(missing)+len(differs) > 0 {
		b.opts.Logf("second pass: %d packages missing, %d at another version", len(missing), len(differs))
		if err := b.runPlan(ctx, follow); err != nil {
			return err
		}
		if db, err = b.be.readDB(ctx); err != nil {
			return fmt.Errorf("reading the build root's packages: %w", err)
		}
		missing, differs, _ = pkgmgr.FollowUpWith(b.in.VM, db, b.in.Plan.Frontend)
	}
	if err := b.writePlanFiles(ctx); err != nil {
		return err
	}
	b.res.Installed, b.res.Missing, b.res.VersionDiffers = db.Packages, missing, differs
	return nil
}

// runPlan runs every step; failures are recorded and the build carries on. Only a cancelled
// context or a broken backend ends it.
func (b *build) runPlan(ctx context.Context, p *pkgmgr.Plan) error {
	for _, s := range p.Steps {
		out, err := b.step(ctx, s)
		b.checkFetch(s.Name, out)
		if err == nil {
			continue
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		var ee *exitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("running step %q: %w", s.Name, err)
		}
		if err := b.retry(ctx, s, specsOf(p, s), out); err != nil {
			return err
		}
	}
	return nil
}

// checkFetch records the repositories a step could not reach: apt-get update only warns and
// exits 0 when a repository does not answer.
func (b *build) checkFetch(step, out string) {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		for _, sign := range fetchProblems {
			if strings.Contains(l, sign) {
				lines = append(lines, strings.TrimSpace(l))
				break
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	if len(lines) > 4 {
		lines = append(lines[:4], fmt.Sprintf("(%d more)", len(lines)-4))
	}
	b.repoDown = true
	b.addError(fmt.Sprintf("step %q: a repository did not answer: %s", step, strings.Join(lines, "; ")), true)
}

// checkScriptlets records the package scriptlets that failed in a step that succeeded: pacman
// says "error: command failed to execute correctly" after a failing .INSTALL function and
// installs the package all the same. The report names the package (its "installing" line)
// and what the scriptlet printed.
func (b *build) checkScriptlets(step, out string) {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.Contains(l, "error: command failed to execute correctly") {
			continue
		}
		start := i
		for start > 0 && i-start < 8 && !strings.HasPrefix(strings.TrimSpace(lines[start]), "installing ") &&
			!strings.HasPrefix(strings.TrimSpace(lines[start]), "upgrading ") {
			start--
		}
		var said []string
		for _, s := range lines[start : i+1] {
			if s = strings.TrimSpace(s); s != "" {
				said = append(said, s)
			}
		}
		b.addError(fmt.Sprintf("step %q: a package scriptlet failed (the package is installed all the same): %s", step, strings.Join(said, "; ")), false)
	}
}

// fetchProblems are the signs, in the installers' output (LC_ALL=C), of a repository that did
// not answer.
var fetchProblems = []string{"Failed to fetch", "Some index files failed to download", "Could not connect",
	"Temporary failure resolving", "Could not resolve", "Failed to download metadata", "Curl error",
	"failed retrieving file", "failed to synchronize", "temporary error (try again later)", "network error",
	"Download (curl) error", "Error code: Connection failed"} // the last two: zypper

// step runs one step, an install as a download with the network and then an install without
// (see network.go), and returns the tail of its output.
func (b *build) step(ctx context.Context, s pkgmgr.Step) (string, error) {
	var m pkgmgr.Manager
	if b.in.Plan != nil {
		m = b.in.Plan.Manager
	}
	run := s
	if sp, ok := offlineSplit(m, s); ok {
		if out, err := b.runStep(ctx, sp.download, true); err != nil {
			return out, err
		}
		b.publishOnce()
		run = sp.install
	}
	out, err := b.runStep(ctx, run, needsNetwork(m, s))
	b.checkScriptlets(s.Name, out) // every run, retries included
	return out, err
}

// runStep runs one command with the build's environment and a time limit, with or without
// the network, and returns the tail of its output.
func (b *build) runStep(ctx context.Context, s pkgmgr.Step, network bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.StepTimeout)
	defer cancel()
	if err := b.be.setNetwork(ctx, network); err != nil {
		return "", err
	}
	tail := &tailbuf.Buffer{Max: 256 << 10}
	fmt.Fprintf(b.opts.Output, "+ %s\n", s)
	b.opts.Logf("step %s (network %v)", s.Name, network)
	env := append(append(append([]string{}, baseEnv...), s.Env...), b.env...)
	err := b.be.run(ctx, s.Argv, env, io.MultiWriter(b.opts.Output, tail))
	return tail.String(), err
}

// publishOnce shares what the build's first download fetched, before any package's code has
// run in the build root; later downloads stay private to the build (see archives.go).
func (b *build) publishOnce() {
	if b.published || b.archives == "" {
		return
	}
	b.published = true
	if b.in.Plan != nil && packageCaches[b.in.Plan.Manager] != nil {
		if err := b.collectPackages(); err != nil {
			b.opts.Logf("keeping downloaded packages: %v", err)
			return
		}
	}
	shared := filepath.Join(b.opts.AptArchiveCache, archiveShareKey(b.in))
	if err := publishArchives(b.archives, shared); err != nil {
		b.opts.Logf("sharing downloaded packages: %v", err)
	}
}

// failed records a failed step with the error lines of its output.
func (b *build) failed(name string, err error, out string, transient bool) {
	msg := fmt.Sprintf("step %q: %v", name, err)
	if lines := errorLines(out, 6); lines != "" {
		msg += ": " + lines
	}
	b.addError(msg, transient)
}

// addError records an error of the build; a transient one keeps the layer out of the cache.
func (b *build) addError(msg string, transient bool) {
	b.opts.Logf("%s", msg)
	b.res.Errors = append(b.res.Errors, msg)
	b.transient = b.transient || transient
}

// errorLines picks up to max lines that look like errors from a command's output.
func errorLines(out string, max int) string {
	var picked []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		low := strings.ToLower(l)
		if strings.HasPrefix(l, "E:") || strings.HasPrefix(l, "W:") || strings.HasPrefix(low, "error") ||
			strings.Contains(low, "failed") || strings.Contains(low, "no match for argument") {
			picked = append(picked, l)
		}
	}
	if len(picked) > max {
		picked = append(picked[:max], fmt.Sprintf("(%d more)", len(picked)-max))
	}
	return strings.Join(picked, "; ")
}

// writeRepoFiles writes the VM's repository configuration into the build root. A path that
// cannot be written (not absolute, through a symlink) is an error of the build, not fatal.
func (b *build) writeRepoFiles(ctx context.Context) error {
	paths := make([]string, 0, len(b.in.RepoFiles))
	for p := range b.in.RepoFiles {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := b.be.writeFile(ctx, p, b.in.RepoFiles[p], 0o644); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.addError(fmt.Sprintf("writing repository file %s: %v", p, err), true)
		}
	}
	return nil
}

// writePlanFiles writes the files the plan wants after its steps (apk's world).
func (b *build) writePlanFiles(ctx context.Context) error {
	for p, data := range b.in.Plan.WriteFiles {
		if err := b.be.writeFile(ctx, p, []byte(data), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}

// place puts a file into the build root for the build only, moving the base's file aside.
func (b *build) place(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	t := temp{path: p}
	ok, err := b.be.exists(ctx, p)
	if err != nil {
		return fmt.Errorf("placing %s: %w", p, err)
	}
	if ok {
		t.saved = p + ".vm2image-saved"
		if err := b.be.rename(ctx, p, t.saved); err != nil {
			return fmt.Errorf("moving %s aside: %w", p, err)
		}
	}
	b.temps = append(b.temps, t)
	if err := b.be.writeFile(ctx, p, data, mode); err != nil {
		return fmt.Errorf("placing %s: %w", p, err)
	}
	return nil
}

// restore removes the placed files, last first, and puts the base's back.
func (b *build) restore(ctx context.Context) error {
	for i := len(b.temps) - 1; i >= 0; i-- {
		t := b.temps[i]
		if err := b.be.remove(ctx, t.path); err != nil {
			return fmt.Errorf("removing %s: %w", t.path, err)
		}
		if t.saved != "" {
			if err := b.be.rename(ctx, t.saved, t.path); err != nil {
				return fmt.Errorf("restoring %s: %w", t.path, err)
			}
		}
	}
	b.temps = nil
	return nil
}
