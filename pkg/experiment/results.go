package experiment

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vm2image/vm2image/pkg/convert"
)

// Results are a suite's runs and their summaries: what results.json holds.
type Results struct {
	Suite       string    `json:"suite"`
	Description string    `json:"description,omitempty"`
	File        string    `json:"file"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Repeat      int       `json:"repeat"`
	Host        Host      `json:"host"`
	Matrix      Matrix    `json:"matrix"`

	// Timing of this invocation: the wall time, the time spent preparing sources (building,
	// booting), the time inside runs, and what the suite added on top of them.
	WallSeconds     float64 `json:"wall_seconds"`
	PrepareSeconds  float64 `json:"prepare_seconds"`
	RunSeconds      float64 `json:"run_seconds"`
	OverheadSeconds float64 `json:"overhead_seconds"`
	OverheadPercent float64 `json:"overhead_percent"` // of RunSeconds
	RunsThisTime    int     `json:"runs_this_time"`

	// Invocations are every invocation that ran runs into this directory (resumes add theirs).
	Invocations []Invocation `json:"invocations"`

	RunsOK     int            `json:"runs_ok"`
	RunsFailed int            `json:"runs_failed"`
	Sources    []SourceResult `json:"sources"`
	Cells      []*CellResult  `json:"cells"`
	Metrics    []Metric       `json:"metrics"`
}

// Invocation is the timing of one invocation of the suite.
type Invocation struct {
	Started         time.Time `json:"started"`
	WallSeconds     float64   `json:"wall_seconds"`
	PrepareSeconds  float64   `json:"prepare_seconds"`
	RunSeconds      float64   `json:"run_seconds"`
	OverheadSeconds float64   `json:"overhead_seconds"`
	Runs            int       `json:"runs"`
}

// invocationsFile keeps the timing of every invocation of a suite in its output directory.
const invocationsFile = "invocations.json"

// addInvocation appends this invocation's timing to the directory's record of invocations.
func addInvocation(dir string, res *Results) error {
	path := filepath.Join(dir, invocationsFile)
	var all []Invocation
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &all); err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
	}
	all = append(all, Invocation{Started: res.Started, WallSeconds: res.WallSeconds, PrepareSeconds: res.PrepareSeconds,
		RunSeconds: res.RunSeconds, OverheadSeconds: res.OverheadSeconds, Runs: res.RunsThisTime})
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	res.Invocations = all
	return writeFileAtomic(path, b)
}

// totals sums the invocations' timing: wall, preparing, runs, overhead (percent of runs).
func (res *Results) totals() (wall, prepare, runs, overhead, percent float64) {
	for _, in := range res.Invocations {
		wall, prepare, runs, overhead = wall+in.WallSeconds, prepare+in.PrepareSeconds, runs+in.RunSeconds, overhead+in.OverheadSeconds
	}
	if runs > 0 {
		percent = 100 * overhead / runs
	}
	return
}

// Host describes the machine the suite ran on.
type Host struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	Converter string `json:"converter_version"`
}

// SourceResult describes one source of the suite.
type SourceResult struct {
	SourceSpec
	Recipe *Recipe `json:"recipe,omitempty"`
	OS     string  `json:"os,omitempty"`
}

// CellResult is a cell with its runs and the median and spread of each figure.
type CellResult struct {
	Cell
	Label   string          `json:"label"`
	Runs    []*RunResult    `json:"runs"`
	Failed  int             `json:"failed"`
	Errors  []string        `json:"errors,omitempty"`
	Summary map[string]Stat `json:"summary"`
}

// median returns the median of a metric over the cell's successful runs, and whether any run
// had it.
func (c *CellResult) median(metric string) (float64, bool) {
	s, ok := c.Summary[metric]
	return s.Median, ok
}

func (r *runner) collect() *Results {
	res := &Results{
		Suite: r.suite.Name, Description: r.suite.Description, File: r.suite.path,
		Started: r.start.UTC(), Finished: time.Now().UTC(), Repeat: r.repeat, Matrix: r.suite.Matrix,
		Host:    Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Converter: convert.Version},
		Metrics: Metrics, RunsThisTime: r.ranNow,
	}
	res.WallSeconds = time.Since(r.start).Seconds()
	res.PrepareSeconds = r.prepare.Seconds()
	res.RunSeconds = r.spent.Seconds()
	res.OverheadSeconds = res.WallSeconds - res.PrepareSeconds - res.RunSeconds
	if res.RunSeconds > 0 {
		res.OverheadPercent = 100 * res.OverheadSeconds / res.RunSeconds
	}
	vary := r.suite.Matrix.varying()
	for _, c := range r.cells {
		cr := &CellResult{Cell: c, Label: c.Label(vary)}
		for rep := 1; rep <= r.repeat; rep++ {
			run := r.done[runName(c.ID, rep)]
			switch {
			case run == nil:
			case run.OK:
				cr.Runs = append(cr.Runs, run)
				res.RunsOK++
			default:
				cr.Runs = append(cr.Runs, run)
				cr.Failed++
				cr.Errors = append(cr.Errors, run.Error)
				res.RunsFailed++
			}
		}
		cr.Summary = summarize(cr.Runs)
		res.Cells = append(res.Cells, cr)
	}
	for _, spec := range r.suite.Sources {
		sr := SourceResult{SourceSpec: spec}
		if rec, ok := r.suite.recipes[spec.Fixture]; ok {
			sr.Recipe = &rec
		}
		for _, cr := range res.Cells {
			for _, run := range cr.Runs {
				if cr.Source == spec.Name && run.OK && run.Report != nil && run.Report.OS != "" {
					sr.OS = run.Report.OS
				}
			}
		}
		res.Sources = append(res.Sources, sr)
	}
	return res
}

// writeResults writes results.json, results.csv, results.md and the plots, each atomically.
func writeResults(dir string, res *Results, s *Suite) error {
	files := []struct {
		name string
		fn   func(io.Writer) error
	}{
		{"results.json", func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}},
		{"results.csv", func(w io.Writer) error { return writeCSV(w, res) }},
		{"results.md", func(w io.Writer) error { return writeMarkdown(w, res, tradeoffVMs(s)) }},
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(dir, f.name), f.fn); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return writePlots(dir, res, tradeoffVMs(s))
}

func tradeoffVMs(s *Suite) int {
	if s.Options.TradeoffVMs > 0 {
		return s.Options.TradeoffVMs
	}
	return 20
}

// writeCSV writes one row per run: the cell's settings, the run's status and every metric.
func writeCSV(w io.Writer, res *Results) error {
	phases := phaseNames(res.Cells)
	head := []string{"source", "kind", "label", "strategy", "packages", "transfer", "compression", "repeat", "ok", "error"}
	for _, m := range Metrics {
		head = append(head, m.Name)
	}
	for _, p := range phases {
		head = append(head, "phase."+p)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, c := range res.Cells {
		runs := append([]*RunResult(nil), c.Runs...)
		sort.SliceStable(runs, func(i, j int) bool { return runs[i].Repeat < runs[j].Repeat })
		for _, run := range runs {
			row := []string{c.Source, c.Kind, c.Label, c.Strategy, onOffBool(c.Packages), c.Transfer, c.Compression,
				strconv.Itoa(run.Repeat), strconv.FormatBool(run.OK), oneLine(run.Error)}
			for _, m := range Metrics {
				row = append(row, csvNum(run.Metrics, m.Name))
			}
			for _, p := range phases {
				row = append(row, csvNum(run.Metrics, "phase."+p))
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvNum(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func onOffBool(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// LoadResults reads a results.json.
func LoadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return &res, nil
}
