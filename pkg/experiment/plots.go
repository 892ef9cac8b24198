package experiment

import (
	"fmt"
	"math"
	"path/filepath"
)

// Plots are the charts written beside the results, each as NAME.svg and NAME.png.
var Plots = []string{"layers", "diff", "phases", "transfer", "tradeoff"}

// writePlots draws every chart and writes it as SVG and PNG.
func writePlots(dir string, res *Results, maxVMs int) error {
	charts := map[string]drawing{
		"layers":   layersChart(res),
		"diff":     diffChart(res),
		"phases":   phasesChart(res),
		"transfer": transferChart(res),
		"tradeoff": tradeoffChart(res, maxVMs),
	}
	for _, name := range Plots {
		d := charts[name]
		w, h := d.size()
		svg, pngc := newSVG(w, h), newPNG(w, h)
		d.draw(svg)
		d.draw(pngc)
		if err := writeAtomic(filepath.Join(dir, name+".svg"), svg.writeTo); err != nil {
			return fmt.Errorf("writing %s.svg: %w", name, err)
		}
		if err := writeAtomic(filepath.Join(dir, name+".png"), pngc.writeTo); err != nil {
			return fmt.Errorf("writing %s.png: %w", name, err)
		}
	}
	return nil
}

// rowsBySource makes one group per source with a row per successful cell that fn accepts
// (fn returns the row's values, or nil to leave the cell out).
func rowsBySource(res *Results, fn func(c *CellResult) map[string]float64) []barGroup {
	var groups []barGroup
	for _, src := range res.Sources {
		g := barGroup{Name: src.Name}
		if src.OS != "" {
			g.Name += " (" + src.OS + ")"
		}
		for _, c := range cellsOf(res, src.Name) {
			if len(c.Summary) == 0 {
				continue
			}
			if v := fn(c); v != nil {
				g.Rows = append(g.Rows, barRow{Label: c.Label, Values: v})
			}
		}
		if len(g.Rows) > 0 {
			groups = append(groups, g)
		}
	}
	return groups
}

// layersChart stacks each setting's image by layer, compressed.
func layersChart(res *Results) drawing {
	segs := []string{"base", "packages", "vm diff", "runtime", "2014 removals", "whole VM"}
	return &barChart{
		Title: "Image size by layer (compressed, median)", Unit: "MB", Scale: 1e6, Segments: segs,
		Groups: rowsBySource(res, func(c *CellResult) map[string]float64 {
			switch c.Kind {
			case KindOneLayer:
				return map[string]float64{"whole VM": med(c, "image_bytes")}
			case Kind2014:
				return map[string]float64{"base": med(c, "base_bytes"), "packages": med(c, "packages_layer_compressed"),
					"vm diff":       med(c, "diff_layer_compressed"),
					"2014 removals": med(c, "image_bytes") - med(c, "base_bytes") - med(c, "packages_layer_compressed") - med(c, "diff_layer_compressed")}
			}
			return map[string]float64{"base": med(c, "base_bytes"), "packages": med(c, "packages_layer_compressed"),
				"vm diff": med(c, "diff_layer_compressed"), "runtime": med(c, "runtime_layer_compressed") + med(c, "image_config_bytes")}
		}),
	}
}

// diffChart shows the diff each strategy makes: added files, modified files (whole, or as
// rdiff's block deltas: rdiffdir's measure), and the rest of the layer tar (headers, metadata
// changes, directories, whiteouts).
func diffChart(res *Results) drawing {
	segs := []string{"added files", "modified files", "modified files as block deltas", "rest of the layer tar"}
	seen := map[string]bool{}
	return &barChart{
		Title: "Diff size per strategy (uncompressed, median; rdiff: added files plus block deltas)", Unit: "MB", Scale: 1e6, Segments: segs,
		Groups: rowsBySource(res, func(c *CellResult) map[string]float64 {
			if c.Kind == KindOneLayer {
				return nil
			}
			key := fmt.Sprintf("%s/%s/%s/%v", c.Source, c.Kind, c.Strategy, c.Packages)
			if seen[key] {
				return nil // transfer and compression do not change the diff
			}
			seen[key] = true
			added, mod := med(c, "diff_added_bytes"), med(c, "diff_modified_bytes")
			if c.Strategy == "rdiff" && c.Kind == KindConvert {
				return map[string]float64{"added files": added, "modified files as block deltas": med(c, "diff_delta_bytes")}
			}
			return map[string]float64{"added files": added, "modified files": mod,
				"rest of the layer tar": math.Max(med(c, "diff_layer_bytes")-added-mod, 0)}
		}),
	}
}

// phasesChart stacks each setting's time by phase.
func phasesChart(res *Results) drawing {
	names := phaseNames(res.Cells)
	return &barChart{
		Title: "Time per phase (median)", Unit: "seconds", Scale: 1, Segments: names,
		Groups: rowsBySource(res, func(c *CellResult) map[string]float64 {
			v := map[string]float64{}
			for _, p := range names {
				v[p] = med(c, "phase."+p)
			}
			return v
		}),
	}
}

// transferChart shows the bytes each setting moved from the VM.
func transferChart(res *Results) drawing {
	return &barChart{
		Title: "Bytes transferred from the VM (median; 0 for local sources, the 2014 pipeline sends its compressed tar)",
		Unit:  "MB", Scale: 1e6, Segments: []string{"transferred"},
		Groups: rowsBySource(res, func(c *CellResult) map[string]float64 {
			return map[string]float64{"transferred": med(c, "transfer_bytes")}
		}),
	}
}

// tradeoffChart plots the stored bytes of 1..maxVMs converted VMs per source.
func tradeoffChart(res *Results, maxVMs int) drawing {
	lc := &lineChart{
		Title:  "Stored bytes for N converted VMs of the same release (base and packages layers stored once)",
		XLabel: "converted VMs", Unit: "MB", Scale: 1e6,
		Series: []string{seriesPackages, seriesNoPackages, seriesOneLayer, series2014},
	}
	for _, src := range res.Sources {
		t := tradeoffOf(res, src.Name)
		if t == nil {
			continue
		}
		p := linePanel{Title: src.Name, Lines: map[string][][2]float64{}}
		for _, s := range t.Series {
			for n := 1; n <= maxVMs; n++ {
				p.Lines[s.Name] = append(p.Lines[s.Name], [2]float64{float64(n), s.at(n)})
			}
		}
		lc.Panels = append(lc.Panels, p)
	}
	return lc
}
