package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vm2image/vm2image/pkg/cache"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options control Run.
type Options struct {
	OutDir string // results go here
	Repeat int    // runs per cell; 0 means the suite's (default 1)
	// Resume keeps the runs an earlier, interrupted invocation left in OutDir and runs only the
	// others. Without it OutDir must hold no runs.
	Resume bool
	// RetryFailed, with Resume, runs again the runs that failed.
	RetryFailed bool
	// KeepImages keeps each conversion's image (docker-archive) in OutDir/images.
	KeepImages  bool
	Progress    io.Writer // progress lines: cells done, time left (default: discarded)
	Logf        func(format string, args ...any)
	AgentBinary string // the static agent for agent and boot fixtures (default: FindAgent)
	InitBinary  string // the image's init (default: the converter's lookup)
}

// runner runs one suite.
type runner struct {
	suite   *Suite
	opts    Options
	repeat  int
	runsDir string
	work    string                // scratch space
	cache   string                // packages layer cache
	done    map[string]*RunResult // finished runs, failed ones included, by runName
	cells   []Cell
	total   int
	count   int // runs finished (or found finished) so far
	start   time.Time
	prepare time.Duration
	spent   time.Duration // sum of the runs of this invocation
	ranNow  int
	visited map[string]bool // sources whose runs have started
	build   bool            // the 2014 pipeline builds its image in the engine
}

// Run runs every cell of the suite opts.Repeat times, persisting each run as it finishes, then
// writes results.json, results.csv, results.md and the plots into opts.OutDir. A source that
// cannot be prepared or a run that fails is recorded as failed and the suite goes on; the
// error returned is for the suite as a whole (an interruption, an unwritable output).
func Run(ctx context.Context, s *Suite, opts Options) (*Results, error) {
	r, err := newRunner(s, opts)
	if err != nil {
		return nil, err
	}
	runErr := r.runAll(ctx)
	res := r.collect()
	if err := addInvocation(opts.OutDir, res); err != nil {
		return res, err
	}
	if err := writeResults(opts.OutDir, res, s); err != nil {
		return res, err
	}
	r.progressf("experiment: %d of %d runs done (%d failed); results in %s", res.RunsOK+res.RunsFailed, r.total, res.RunsFailed, opts.OutDir)
	return res, runErr
}

func newRunner(s *Suite, opts Options) (*runner, error) {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	r := &runner{suite: s, opts: opts, repeat: opts.Repeat, start: time.Now(), done: map[string]*RunResult{}, visited: map[string]bool{}}
	if r.repeat <= 0 {
		r.repeat = max(s.Repeat, 1)
	}
	r.cells = s.Cells()
	r.total = len(r.cells) * r.repeat
	r.work = s.Options.WorkDir
	if r.work == "" {
		r.work = filepath.Join("/var/tmp/vm2image-experiment", s.Name)
	}
	switch pc := s.Options.PackagesCache; pc {
	case "", "suite":
		r.cache = filepath.Join(r.work, "cache")
	case "shared":
		r.cache = ""
	default:
		r.cache = pc
	}
	r.runsDir = filepath.Join(opts.OutDir, "runs")
	if err := os.MkdirAll(r.runsDir, 0o755); err != nil {
		return nil, fmt.Errorf("making %s: %w", r.runsDir, err)
	}
	// The work directory holds booted fixture roots and caches: set-id files, device nodes.
	if err := cache.MkdirPrivate(r.work, opts.Logf); err != nil {
		return nil, fmt.Errorf("making %s: %w", r.work, err)
	}
	if err := r.loadRuns(); err != nil {
		return nil, err
	}
	r.build = s.Baselines.Build == nil || *s.Baselines.Build
	return r, nil
}

// loadRuns reads the runs an earlier invocation persisted.
func (r *runner) loadRuns() error {
	des, err := os.ReadDir(r.runsDir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", r.runsDir, err)
	}
	var names []string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".json") && !strings.HasPrefix(de.Name(), ".") {
			names = append(names, de.Name())
		}
	}
	if len(names) > 0 && !r.opts.Resume {
		return fmt.Errorf("%s holds %d runs of an earlier invocation: give --resume to finish that suite, or another output directory", r.opts.OutDir, len(names))
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(r.runsDir, n))
		if err != nil {
			return err
		}
		var run RunResult
		if err := json.Unmarshal(b, &run); err != nil {
			return fmt.Errorf("reading run %s: %w", n, err)
		}
		if run.OK && run.Report != nil {
			run.Metrics = reportMetrics(run.Report) // the report is the record: derive its figures anew
		}
		if run.OK || !r.opts.RetryFailed {
			r.done[runName(run.Cell, run.Repeat)] = &run
		}
	}
	return nil
}

// runAll runs the pending runs, source by source.
func (r *runner) runAll(ctx context.Context) error {
	for _, c := range r.cells {
		for rep := 1; rep <= r.repeat; rep++ {
			if r.done[runName(c.ID, rep)] != nil {
				r.count++
			}
		}
	}
	if r.count > 0 {
		r.progressf("experiment: resuming: %d of %d runs already done", r.count, r.total)
	}
	for _, spec := range r.suite.Sources {
		if err := r.runSource(ctx, spec); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) runSource(ctx context.Context, spec SourceSpec) error {
	var pending []Cell
	for _, c := range r.cells {
		if c.Source == spec.Name && r.pendingRuns(c) > 0 {
			pending = append(pending, c)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	t0 := time.Now()
	r.visited[spec.Name] = true
	r.progressf("experiment: preparing %s", spec.Name)
	ps, perr := r.prepareSource(ctx, spec)
	r.prepare += time.Since(t0)
	if ps != nil {
		defer ps.close()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if perr != nil {
		r.progressf("experiment: preparing %s failed: %v", spec.Name, perr)
	}
	for _, c := range pending {
		for rep := 1; rep <= r.repeat; rep++ {
			if r.done[runName(c.ID, rep)] != nil {
				continue
			}
			run := r.runCell(ctx, ps, perr, c, rep)
			if ctx.Err() != nil {
				return fmt.Errorf("running the suite: %w", ctx.Err())
			}
			if err := r.persist(run); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) pendingRuns(c Cell) int {
	n := 0
	for rep := 1; rep <= r.repeat; rep++ {
		if r.done[runName(c.ID, rep)] == nil {
			n++
		}
	}
	return n
}

// runCell runs one repeat of a cell and reports its progress.
func (r *runner) runCell(ctx context.Context, ps *preparedSource, prepErr error, c Cell, rep int) *RunResult {
	run := &RunResult{Cell: c.ID, Repeat: rep, Started: time.Now().UTC(), Metrics: map[string]float64{}}
	t0 := time.Now()
	var err error
	if prepErr != nil {
		err = fmt.Errorf("preparing source %s: %w", c.Source, prepErr)
	} else {
		switch c.Kind {
		case KindConvert:
			err = r.runConvert(ctx, ps, c, run)
		case KindOneLayer:
			err = r.runOneLayer(ctx, ps, c, run)
		case Kind2014:
			err = r.run2014(ctx, ps, c, run)
		}
	}
	el := time.Since(t0)
	run.Seconds = el.Seconds()
	if run.Metrics["seconds"] == 0 {
		run.Metrics["seconds"] = run.Seconds
	}
	run.OK = err == nil
	if err != nil {
		run.Error = err.Error()
	}
	if ctx.Err() != nil {
		return run
	}
	if prepErr == nil {
		r.spent += el
		r.ranNow++
	}
	r.count++
	status := fmt.Sprintf("ok in %.1fs", run.Seconds)
	if err != nil {
		status = fmt.Sprintf("FAILED after %.1fs: %s", run.Seconds, oneLine(err.Error()))
	}
	r.progressf("experiment: [%d/%d] %s: %s #%d %s; %s", r.count, r.total, c.Source, c.Label(nil), rep, status, r.eta())
	return run
}

// eta estimates the time left from the runs of this invocation.
func (r *runner) eta() string {
	left := r.total - r.count
	if left == 0 {
		return "done"
	}
	runs := "runs"
	if left == 1 {
		runs = "run"
	}
	if len(r.done) == 0 {
		return fmt.Sprintf("%d %s left", left, runs)
	}
	var est time.Duration
	for _, c := range r.cells {
		n := r.pendingRuns(c)
		if n == 0 {
			continue
		}
		est += time.Duration(n) * r.meanSeconds(c)
	}
	more := ""
	if n := r.unpreparedSources(); n > 0 {
		more = fmt.Sprintf(" plus preparing %d more source(s)", n)
	}
	return fmt.Sprintf("%d %s left, about %s%s", left, runs, est.Round(time.Second), more)
}

// unpreparedSources counts the sources with pending runs that are still to be prepared.
func (r *runner) unpreparedSources() int {
	n := 0
	for _, spec := range r.suite.Sources {
		if r.visited[spec.Name] {
			continue
		}
		for _, c := range r.cells {
			if c.Source == spec.Name && r.pendingRuns(c) > 0 {
				n++
				break
			}
		}
	}
	return n
}

// meanSeconds is the mean time of the finished runs most like c: the same cell, else the same
// kind, else all.
func (r *runner) meanSeconds(c Cell) time.Duration {
	var same, kind, all []float64
	for _, run := range r.done {
		cc := r.cellByID(run.Cell)
		all = append(all, run.Seconds)
		if cc.Kind == c.Kind {
			kind = append(kind, run.Seconds)
		}
		if cc.ID == c.ID {
			same = append(same, run.Seconds)
		}
	}
	for _, xs := range [][]float64{same, kind, all} {
		if len(xs) > 0 {
			var s float64
			for _, x := range xs {
				s += x
			}
			return time.Duration(s / float64(len(xs)) * float64(time.Second))
		}
	}
	return 0
}

func (r *runner) cellByID(id string) Cell {
	for _, c := range r.cells {
		if c.ID == id {
			return c
		}
	}
	return Cell{ID: id}
}

// persist writes the run atomically into the runs directory.
func (r *runner) persist(run *RunResult) error {
	b, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding run %s: %w", run.Cell, err)
	}
	path := filepath.Join(r.runsDir, runName(run.Cell, run.Repeat)+".json")
	if err := writeFileAtomic(path, b); err != nil {
		return fmt.Errorf("saving run %s: %w", run.Cell, err)
	}
	r.done[runName(run.Cell, run.Repeat)] = run
	return nil
}

func (r *runner) progressf(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, format+"\n", args...)
}

// writeFileAtomic writes b to path through a temporary file in the same directory.
func writeFileAtomic(path string, b []byte) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// writeAtomic writes path through fn into a temporary file in the same directory, synced and
// renamed into place on success.
func writeAtomic(path string, fn func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	err = fn(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

var errNoPackagesLayer = errors.New("no conversion of this source with packages succeeded: the 2014 pipeline with packages needs its packages layer")
