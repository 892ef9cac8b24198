package experiment

import (
	"fmt"
	"strings"
)

// Kinds of cells: a conversion, and the two baselines every suite runs.
const (
	KindConvert  = "convert"       // vm2image convert with the cell's settings
	KindOneLayer = "one-layer"     // the whole VM as one layer: export, compress
	Kind2014     = "pipeline-2014" // full compressed tar, rsync --compare-dest, tar, image build
)

// Cell is one combination of source and settings; it runs Repeat times.
type Cell struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Kind        string `json:"kind"`
	Strategy    string `json:"strategy,omitempty"`
	Packages    bool   `json:"packages"`
	Transfer    string `json:"transfer,omitempty"`
	Compression string `json:"compression,omitempty"`
}

// Cells expands the suite into its cells, source by source: the conversions of the matrix
// (those with packages first, so that the first one builds the packages layer), then the
// whole VM as one layer for each compression, then the 2014 pipeline with and without packages.
func (s *Suite) Cells() []Cell {
	var out []Cell
	m := s.Matrix
	for _, src := range s.Sources {
		for _, pk := range []string{"on", "off"} {
			if !contains(m.Packages, pk) {
				continue
			}
			for _, st := range m.Strategy {
				for _, tr := range m.Transfer {
					for _, co := range m.Compression {
						out = append(out, newCell(src.Name, KindConvert, st, pk == "on", tr, co))
					}
				}
			}
		}
		for _, co := range m.Compression {
			out = append(out, newCell(src.Name, KindOneLayer, "", false, "", co))
		}
		for _, pk := range m.Packages {
			out = append(out, newCell(src.Name, Kind2014, "rsync", pk == "on", "full", "gzip"))
		}
	}
	return out
}

func newCell(source, kind, strategy string, packages bool, transfer, compression string) Cell {
	c := Cell{Source: source, Kind: kind, Strategy: strategy, Packages: packages, Transfer: transfer, Compression: compression}
	parts := []string{source, kind}
	switch kind {
	case KindConvert:
		parts = append(parts, strategy, pkgWord(packages), transfer, compression)
	case KindOneLayer:
		parts = append(parts, compression)
	case Kind2014:
		parts = append(parts, pkgWord(packages))
	}
	c.ID = strings.Join(parts, ".")
	return c
}

func pkgWord(on bool) string {
	if on {
		return "pkgs"
	}
	return "nopkgs"
}

// Label names the cell's settings for tables and plots: the strategy, and the axes that vary
// (all of them when vary is nil).
func (c Cell) Label(vary map[string]bool) string {
	switch c.Kind {
	case KindOneLayer:
		return "one layer (export + " + c.Compression + ")"
	case Kind2014:
		if c.Packages {
			return "2014 pipeline, packages"
		}
		return "2014 pipeline, no packages"
	}
	parts := []string{c.Strategy}
	add := func(axis, v string) {
		if vary == nil || vary[axis] {
			parts = append(parts, v)
		}
	}
	if c.Packages {
		add("packages", "packages")
	} else {
		add("packages", "no packages")
	}
	add("transfer", "transfer "+c.Transfer)
	add("compression", c.Compression)
	return "vm2image " + strings.Join(parts, ", ")
}

// varying reports which axes of the matrix take more than one value.
func (m Matrix) varying() map[string]bool {
	return map[string]bool{
		"strategy": len(m.Strategy) > 1, "packages": len(m.Packages) > 1,
		"transfer": len(m.Transfer) > 1, "compression": len(m.Compression) > 1,
	}
}

// runName is the file name (without extension) of a cell's run.
func runName(cellID string, repeat int) string { return fmt.Sprintf("%s.r%d", cellID, repeat) }
