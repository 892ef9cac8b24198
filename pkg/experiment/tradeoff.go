package experiment

// tradeoff models the storage of N converted VMs of one release that share the base and the
// packages layer: shared layers are stored once, each VM adds its own layers.
type tradeoff struct {
	Source string
	Series []tradeSeries
}

// tradeSeries is one way of storing N VMs: Fixed bytes once, PerVM bytes for each.
type tradeSeries struct {
	Name  string
	Fixed float64
	PerVM float64
}

func (s tradeSeries) at(n int) float64 { return s.Fixed + float64(n)*s.PerVM }

// Names of the trade-off's series.
const (
	seriesPackages   = "vm2image, packages layer shared"
	seriesNoPackages = "vm2image, no packages layer"
	seriesOneLayer   = "one layer per VM"
	series2014       = "2014 pipeline, packages"
)

// tradeoffOf builds the trade-off of a source from the medians of its cells; nil when no
// conversion of it succeeded.
func tradeoffOf(res *Results, source string) *tradeoff {
	t := &tradeoff{Source: source}
	for _, pk := range []bool{true, false} {
		c := pickConvert(res, source, pk)
		if c == nil {
			continue
		}
		s := tradeSeries{Name: seriesNoPackages, Fixed: med(c, "base_bytes")}
		if pk {
			s.Name = seriesPackages
			s.Fixed += med(c, "packages_layer_compressed")
		}
		s.PerVM = med(c, "diff_layer_compressed") + med(c, "runtime_layer_compressed") + med(c, "image_config_bytes")
		t.Series = append(t.Series, s)
	}
	if len(t.Series) == 0 {
		return nil
	}
	for _, c := range res.Cells {
		if c.Source != source || len(c.Summary) == 0 {
			continue
		}
		switch {
		case c.Kind == KindOneLayer && (c.Compression == "gzip" || !hasSeries(t, seriesOneLayer)):
			t.Series = withSeries(t.Series, tradeSeries{Name: seriesOneLayer, PerVM: med(c, "image_bytes")})
		case c.Kind == Kind2014 && c.Packages:
			t.Series = append(t.Series, tradeSeries{Name: series2014,
				Fixed: med(c, "base_bytes") + med(c, "packages_layer_compressed"),
				PerVM: med(c, "image_bytes") - med(c, "base_bytes") - med(c, "packages_layer_compressed")})
		}
	}
	return t
}

// breakEven is the smallest fleet (up to limit) for which a stores no more than b; 0 if none.
func breakEven(a, b tradeSeries, limit int) int {
	for n := 1; n <= limit; n++ {
		if a.at(n) <= b.at(n) {
			return n
		}
	}
	return 0
}

func (t *tradeoff) series(name string) (tradeSeries, bool) {
	for _, s := range t.Series {
		if s.Name == name {
			return s, true
		}
	}
	return tradeSeries{}, false
}

func hasSeries(t *tradeoff, name string) bool { _, ok := t.series(name); return ok }

func withSeries(list []tradeSeries, s tradeSeries) []tradeSeries {
	for i := range list {
		if list[i].Name == s.Name {
			list[i] = s
			return list
		}
	}
	return append(list, s)
}

// pickConvert chooses the source's conversion cell for the trade-off: with packages as given,
// preferring gzip, then the checksum strategy, then transfer diff.
func pickConvert(res *Results, source string, packages bool) *CellResult {
	var best *CellResult
	score := func(c *CellResult) int {
		s := 0
		if c.Compression == "gzip" {
			s += 4
		}
		if c.Strategy == "checksum" {
			s += 2
		}
		if c.Transfer == "diff" {
			s++
		}
		return s
	}
	for _, c := range res.Cells {
		if c.Source != source || c.Kind != KindConvert || c.Packages != packages || len(c.Summary) == 0 {
			continue
		}
		if best == nil || score(c) > score(best) {
			best = c
		}
	}
	return best
}

func med(c *CellResult, metric string) float64 {
	v, _ := c.median(metric)
	return v
}
