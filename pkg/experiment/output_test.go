package experiment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syntheticResults is a suite result with one VM: two conversions and both baselines.
func syntheticResults() *Results {
	cell := func(c Cell, m map[string]float64) *CellResult {
		run := &RunResult{Cell: c.ID, Repeat: 1, OK: true, Metrics: m}
		return &CellResult{Cell: c, Label: c.Label(nil), Runs: []*RunResult{run}, Summary: summarize([]*RunResult{run})}
	}
	return &Results{Suite: "synthetic", Repeat: 1, Sources: []SourceResult{{SourceSpec: SourceSpec{Name: "vm"}, OS: "debian 12"}},
		Cells: []*CellResult{
			cell(newCell("vm", KindConvert, "checksum", true, "diff", "gzip"), map[string]float64{
				"base_bytes": 60e6, "packages_layer_compressed": 30e6, "diff_layer_compressed": 20e6, "runtime_layer_compressed": 2e6,
				"image_config_bytes": 2e3, "image_bytes": 112.002e6, "seconds": 5, "phase.base": 1, "phase.diff": 4, "diff_added": 10}),
			cell(newCell("vm", KindConvert, "checksum", false, "diff", "gzip"), map[string]float64{
				"base_bytes": 60e6, "diff_layer_compressed": 45e6, "runtime_layer_compressed": 2e6, "image_config_bytes": 2e3,
				"image_bytes": 107.002e6, "seconds": 4, "phase.base": 1, "phase.diff": 3}),
			cell(newCell("vm", KindOneLayer, "", false, "", "gzip"), map[string]float64{"image_bytes": 100e6, "full_tar_bytes": 250e6,
				"full_tar_compressed": 100e6, "seconds": 2, "phase.export": 2}),
			cell(newCell("vm", Kind2014, "rsync", true, "full", "gzip"), map[string]float64{"base_bytes": 60e6,
				"packages_layer_compressed": 30e6, "diff_layer_compressed": 25e6, "image_bytes": 115.1e6, "seconds": 30, "phase.rsync": 30}),
		}}
}

func TestTradeoff(t *testing.T) {
	tr := tradeoffOf(syntheticResults(), "vm")
	pk, _ := tr.series(seriesPackages)
	np, _ := tr.series(seriesNoPackages)
	one, _ := tr.series(seriesOneLayer)
	if pk.Fixed != 90e6 || pk.PerVM != 22.002e6 || np.Fixed != 60e6 || np.PerVM != 47.002e6 || one.PerVM != 100e6 {
		t.Fatalf("series %+v", tr.Series)
	}
	// 90 + 22n <= 60 + 47n from n = 2 on (n = 1: 112 > 107)
	if n := breakEven(pk, np, 100); n != 2 {
		t.Errorf("packages layer pays from %d VMs, want 2", n)
	}
	if n := breakEven(np, pk, 100); n != 1 {
		t.Errorf("no packages layer is smaller from %d, want 1", n)
	}
	if n := breakEven(one, tradeSeries{Fixed: 1e12}, 5); n != 1 {
		t.Errorf("break-even %d", n)
	}
}

func TestWriteOutputs(t *testing.T) {
	dir := t.TempDir()
	res := syntheticResults()
	s := &Suite{Name: "synthetic"}
	if err := writeResults(dir, res, s); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, dir, &Results{Cells: res.Cells, RunsOK: 4})
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## vm", "| vm2image checksum, packages, transfer diff, gzip |", "pays for itself from 2 VMs on",
		"| 20 | 530.04 MB | 1000.04 MB | 2000.00 MB |", "| one layer (export + gzip) |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
}

func TestStat(t *testing.T) {
	s := statOf([]float64{3, 1, 2, 10})
	if s.Median != 2.5 || s.Min != 1 || s.Max != 10 || s.N != 4 {
		t.Errorf("%+v", s)
	}
	if tickLabel(2.5, 0.5) != "2.5" || tickLabel(20, 5) != "20" || tickLabel(0.25, 0.05) != "0.25" {
		t.Error(tickLabel(2.5, 0.5), tickLabel(20, 5), tickLabel(0.25, 0.05))
	}
}
