package experiment

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// writeMarkdown writes results.md: one block per VM shaped like the journal's tables, one row
// per setting, then the time per phase and the storage trade-off.
func writeMarkdown(w io.Writer, res *Results, maxVMs int) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# Experiment suite %s\n\n", res.Suite)
	if res.Description != "" {
		fmt.Fprintf(bw, "%s\n\n", strings.TrimSpace(res.Description))
	}
	fmt.Fprintf(bw, "Finished %s on %d CPUs (%s, converter %s). Every cell ran %d time(s): figures are medians, times "+
		"show the spread (min-max) when a cell ran more than once. Sizes in MB (10^6 bytes); \"files\" sizes are the "+
		"regular files of a tree, \"tar\" an uncompressed layer, \"gz\"/\"zst\" a compressed one.\n\n",
		res.Finished.Format("2006-01-02 15:04 MST"), res.Host.CPUs, res.Host.GoVersion, res.Host.Converter, res.Repeat)
	wall, prep, runs, over, pct := res.totals()
	fmt.Fprintf(bw, "Runs: %d ok, %d failed, in %d invocation(s) of the suite: %.1f s wall, %.1f s preparing sources "+
		"(building and booting VMs), %.1f s in runs, %.1f s of suite overhead (%.2f%% of the runs).\n\n", res.RunsOK,
		res.RunsFailed, len(res.Invocations), wall, prep, runs, over, pct)
	fmt.Fprintf(bw, "Plots: [layers](layers.svg), [diff](diff.svg), [phases](phases.svg), [transfer](transfer.svg), [trade-off](tradeoff.svg).\n\n")
	writeSummary(bw, res)
	for _, src := range res.Sources {
		writeSourceBlock(bw, res, src, maxVMs)
	}
	return bw.Flush()
}

// writeSummary writes one line per VM with the headline figures: the image each approach makes,
// what crossed the wire and how long it took.
func writeSummary(w io.Writer, res *Results) {
	fmt.Fprintf(w, "## Summary\n\nImages compressed; vm2image with the checksum strategy and gzip where the suite has them.\n\n")
	fmt.Fprintf(w, "| VM | original files | whole VM, one layer | vm2image, packages | vm2image, no packages | 2014 pipeline, packages | "+
		"transferred: diff / full / 2014 | time (s): vm2image / 2014 | packages layer pays from |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, src := range res.Sources {
		pk, np := pickConvert(res, src.Name, true), pickConvert(res, src.Name, false)
		var one, old, full *CellResult
		for _, c := range cellsOf(res, src.Name) {
			switch {
			case len(c.Summary) == 0:
			case c.Kind == KindOneLayer && (one == nil || c.Compression == "gzip"):
				one = c
			case c.Kind == Kind2014 && c.Packages:
				old = c
			case c.Kind == KindConvert && c.Transfer == "full" && pk != nil && c.Strategy == pk.Strategy && c.Packages && c.Compression == pk.Compression:
				full = c
			}
		}
		orig, _ := first(cellsOf(res, src.Name), "original_bytes", KindConvert)
		even := ""
		if t := tradeoffOf(res, src.Name); t != nil {
			a, ok1 := t.series(seriesPackages)
			b, ok2 := t.series(seriesNoPackages)
			if ok1 && ok2 {
				even = strings.TrimPrefix(evenText(breakEven(a, b, 1000)), "from ")
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s | %s |\n", src.Name, mbIf(orig > 0, orig),
			cellMB(one, "image_bytes"), cellMB(pk, "image_bytes"), cellMB(np, "image_bytes"), cellMB(old, "image_bytes"),
			cellMB(pk, "transfer_bytes"), cellMB(full, "transfer_bytes"), cellMB(old, "transfer_bytes"),
			cellNum(pk, "seconds"), cellNum(old, "seconds"), even)
	}
	fmt.Fprintln(w)
}

func cellMB(c *CellResult, metric string) string {
	if c == nil {
		return "-"
	}
	v, ok := c.median(metric)
	return mbIf(ok, v)
}

func cellNum(c *CellResult, metric string) string {
	if c == nil {
		return "-"
	}
	v, ok := c.median(metric)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func mbIf(ok bool, v float64) string {
	if !ok {
		return "-"
	}
	return mb(v)
}

func writeSourceBlock(w io.Writer, res *Results, src SourceResult, maxVMs int) {
	cells := cellsOf(res, src.Name)
	fmt.Fprintf(w, "## %s\n\n", src.Name)
	var about []string
	if src.OS != "" {
		about = append(about, src.OS)
	}
	if src.Recipe != nil {
		if src.Recipe.Profile != "" {
			about = append(about, src.Recipe.Profile)
		}
		about = append(about, fmt.Sprintf("fixture %s (debootstrap %s), served as %s", src.Fixture, src.Recipe.Suite, src.Mode))
	} else {
		about = append(about, "source "+src.Source)
	}
	fmt.Fprintf(w, "%s.\n\n", strings.Join(about, "; "))
	writeOverview(w, cells)
	writeSizes(w, cells)
	writePhases(w, res, cells)
	writeTradeoff(w, tradeoffOf(res, src.Name), maxVMs)
}

func cellsOf(res *Results, source string) []*CellResult {
	var out []*CellResult
	for _, c := range res.Cells {
		if c.Source == source {
			out = append(out, c)
		}
	}
	return out
}

// first returns the first median of metric among cells of the kinds given (any kind if none).
func first(cells []*CellResult, metric string, kinds ...string) (float64, bool) {
	for _, c := range cells {
		if len(kinds) > 0 && !contains(kinds, c.Kind) {
			continue
		}
		if v, ok := c.median(metric); ok {
			return v, true
		}
	}
	return 0, false
}

// writeOverview writes the journal's per-VM figures that do not depend on the setting.
func writeOverview(w io.Writer, cells []*CellResult) {
	fmt.Fprintf(w, "| figure | value |\n|---|---|\n")
	row := func(name, val string) { fmt.Fprintf(w, "| %s | %s |\n", name, val) }
	if v, ok := first(cells, "original_bytes", KindConvert); ok {
		n, _ := first(cells, "original_entries", KindConvert)
		row("Original filesystem", fmt.Sprintf("%s in %.0f entries", mb(v), n))
	}
	if v, ok := first(cells, "base_bytes"); ok {
		s := mb(v) + " compressed"
		if f, ok := first(cells, "base_files_bytes", Kind2014); ok {
			s += fmt.Sprintf("; %s of files", mb(f))
		}
		row("Base image", s)
	}
	for _, c := range cells {
		if c.Kind != KindConvert || !c.Packages {
			continue
		}
		if vm, ok := c.median("packages_vm"); ok {
			base, _ := c.median("packages_base")
			b, _ := c.median("packages_roots_before")
			a, _ := c.median("packages_roots_after")
			row("Packages", fmt.Sprintf("%.0f in the VM, %.0f in the base; install set %.0f -> %.0f after dependency filtering", vm, base, b, a))
			lb, _ := c.median("packages_layer_bytes")
			lc, _ := c.median("packages_layer_compressed")
			row("Packages installed (packages layer)", fmt.Sprintf("%s tar; %s compressed", mb(lb), mb(lc)))
			break
		}
	}
	if f, ok := first(cells, "base_packages_files_bytes", Kind2014); ok {
		row("New base including packages", mb(f)+" of files")
	}
	for _, c := range cells {
		if c.Kind == KindOneLayer && len(c.Summary) > 0 {
			row("Whole VM as one layer ("+c.Compression+")", fmt.Sprintf("%s tar; %s compressed", mb(med(c, "full_tar_bytes")), mb(med(c, "full_tar_compressed"))))
		}
	}
	fmt.Fprintln(w)
}

// writeSizes writes the journal's table: one row per setting.
func writeSizes(w io.Writer, cells []*CellResult) {
	fmt.Fprintf(w, "| setting | packages before -> after | packages layer (tar / compressed) | diff added (entries, MB) | "+
		"diff modified | diff deleted | rdiff delta | diff layer (entries; tar / compressed) | image (compressed) | transferred | time (s) |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		if len(c.Summary) == 0 {
			fmt.Fprintf(w, "| %s | failed: %s |%s\n", c.Label, mdEscape(firstError(c)), strings.Repeat(" |", 9))
			continue
		}
		get := func(m string) string { v, ok := c.median(m); return cond(ok, fmt.Sprintf("%.0f", v)) }
		pk := ""
		if b, ok := c.median("packages_roots_before"); ok {
			a, _ := c.median("packages_roots_after")
			pk = fmt.Sprintf("%.0f -> %.0f", b, a)
		}
		pl := pair(c, "packages_layer_bytes", "packages_layer_compressed")
		added := entriesBytes(c, "diff_added", "diff_added_bytes")
		mod := entriesBytes(c, "diff_modified", "diff_modified_bytes")
		del := entriesBytes(c, "diff_deleted", "diff_deleted_bytes")
		delta := ""
		if c.Strategy == "rdiff" && c.Kind == KindConvert {
			delta = mb(med(c, "diff_delta_bytes"))
		}
		dl := ""
		if _, ok := c.median("diff_layer_bytes"); ok {
			dl = get("diff_layer_entries") + "; " + pair(c, "diff_layer_bytes", "diff_layer_compressed")
		} else if c.Kind == KindOneLayer {
			dl = "1 layer; " + pair(c, "full_tar_bytes", "full_tar_compressed")
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Label, pk, pl, added, mod, del, delta, dl,
			mb(med(c, "image_bytes")), mb(med(c, "transfer_bytes")), timeSpread(c, "seconds"))
	}
	fmt.Fprintln(w)
	for _, c := range cells {
		if c.Failed > 0 && len(c.Summary) > 0 {
			fmt.Fprintf(w, "- %s: %d run(s) failed: %s\n", c.Label, c.Failed, mdEscape(firstError(c)))
		}
	}
	fmt.Fprintln(w)
}

func writePhases(w io.Writer, res *Results, cells []*CellResult) {
	var names []string
	for _, p := range phaseNames(res.Cells) {
		for _, c := range cells {
			if _, ok := c.Summary["phase."+p]; ok {
				names = append(names, p)
				break
			}
		}
	}
	if len(names) == 0 {
		return
	}
	fmt.Fprintf(w, "Time per phase (s, median):\n\n| setting | %s | total |\n|---|%s---|\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	for _, c := range cells {
		if len(c.Summary) == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s |", c.Label)
		for _, p := range names {
			v, ok := c.median("phase." + p)
			fmt.Fprintf(w, " %s |", cond(ok, fmt.Sprintf("%.2f", v)))
		}
		fmt.Fprintf(w, " %s |\n", timeSpread(c, "seconds"))
	}
	fmt.Fprintln(w)
}

func writeTradeoff(w io.Writer, t *tradeoff, maxVMs int) {
	if t == nil {
		return
	}
	ns := []int{1, 2, 5, 10, maxVMs}
	fmt.Fprintf(w, "Stored bytes for N converted VMs like this one (same release and packages; shared layers stored once):\n\n| N |")
	for _, s := range t.Series {
		fmt.Fprintf(w, " %s |", s.Name)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", len(t.Series)))
	for i, n := range ns {
		if i > 0 && n <= ns[i-1] {
			continue
		}
		fmt.Fprintf(w, "| %d |", n)
		for _, s := range t.Series {
			fmt.Fprintf(w, " %s |", mb(s.at(n)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	pk, ok1 := t.series(seriesPackages)
	np, ok2 := t.series(seriesNoPackages)
	one, ok3 := t.series(seriesOneLayer)
	if ok1 && ok2 {
		fmt.Fprintf(w, "- The packages layer (%s stored once) pays for itself %s.\n", mb(pk.Fixed-np.Fixed), evenText(breakEven(pk, np, 1000)))
	}
	if ok1 && ok3 {
		fmt.Fprintf(w, "- Layered images store less than one-layer images %s.\n", evenText(breakEven(pk, one, 1000)))
	}
	fmt.Fprintln(w)
}

func evenText(n int) string {
	switch n {
	case 0:
		return "at no fleet size up to 1000 VMs"
	case 1:
		return "from the first VM"
	}
	return fmt.Sprintf("from %d VMs on", n)
}

func mb(v float64) string { return fmt.Sprintf("%.2f MB", v/1e6) }

func pair(c *CellResult, tarMetric, compMetric string) string {
	t, ok := c.median(tarMetric)
	if !ok {
		return ""
	}
	z, _ := c.median(compMetric)
	return fmt.Sprintf("%.2f / %.2f MB", t/1e6, z/1e6)
}

func entriesBytes(c *CellResult, n, b string) string {
	e, ok := c.median(n)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%.0f (%.2f MB)", e, med(c, b)/1e6)
}

func timeSpread(c *CellResult, metric string) string {
	s, ok := c.Summary[metric]
	if !ok {
		return ""
	}
	if s.N > 1 {
		return fmt.Sprintf("%.1f (%.1f-%.1f)", s.Median, s.Min, s.Max)
	}
	return fmt.Sprintf("%.1f", s.Median)
}

func cond(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}

func firstError(c *CellResult) string {
	if len(c.Errors) > 0 {
		return c.Errors[0]
	}
	return "no successful run"
}

func mdEscape(s string) string {
	s = oneLine(s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.ReplaceAll(s, "|", `\|`)
}
