package experiment

import (
	"sort"
	"time"

	"github.com/vm2image/vm2image/pkg/convert"
)

// Metric describes one figure of a run.
type Metric struct {
	Name string `json:"name"`
	Unit string `json:"unit"` // bytes, count, seconds
	Help string `json:"help"`
}

// Metrics are the figures of runs, in the order of the CSV's columns. Phase times follow them
// as phase.NAME (seconds).
var Metrics = []Metric{
	{"original_bytes", "bytes", "the VM's regular files (after excludes): the journal's original filesystem"},
	{"original_entries", "count", "entries of the VM's tree"},
	{"base_bytes", "bytes", "the base image's layers, compressed"},
	{"base_files_bytes", "bytes", "the base's regular files, unpacked (2014 pipeline)"},
	{"packages_vm", "count", "packages installed in the VM"},
	{"packages_base", "count", "packages installed in the base"},
	{"packages_roots_before", "count", "install set: VM packages the base lacks"},
	{"packages_roots_after", "count", "install set after dependency filtering (roots of the condensation)"},
	{"packages_installed", "count", "packages the packages layer installed, dependencies included"},
	{"packages_missing", "count", "VM packages the repository no longer has (left to the diff)"},
	{"packages_layer_bytes", "bytes", "packages layer tar, uncompressed: the journal's packages installed total"},
	{"packages_layer_compressed", "bytes", "packages layer, compressed"},
	{"packages_cache_hit", "count", "1 when the packages layer came from the cache"},
	{"packages_install_seconds", "seconds", "building the packages layer (or finding it in the cache)"},
	{"base_packages_files_bytes", "bytes", "the new base including packages: regular files (2014 pipeline)"},
	{"diff_added", "count", "entries added by the VM"},
	{"diff_added_bytes", "bytes", "bytes of added files"},
	{"diff_modified", "count", "entries whose contents changed"},
	{"diff_modified_bytes", "bytes", "new sizes of modified files"},
	{"diff_metadata", "count", "entries whose metadata only changed"},
	{"diff_deleted", "count", "entries the VM deleted (subtrees counted whole)"},
	{"diff_deleted_bytes", "bytes", "bytes of deleted files"},
	{"diff_delta_bytes", "bytes", "rdiff: block deltas of modified files"},
	{"diff_layer_entries", "count", "tar entries of the diff layer, whiteouts included"},
	{"diff_layer_whiteouts", "count", "whiteouts (and opaque markers) in the diff layer"},
	{"diff_layer_bytes", "bytes", "diff layer tar, uncompressed"},
	{"diff_layer_content_bytes", "bytes", "file contents in the diff layer"},
	{"diff_layer_compressed", "bytes", "diff layer, compressed"},
	{"runtime_layer_compressed", "bytes", "runtime layer (init, services), compressed"},
	{"full_tar_bytes", "bytes", "the whole VM as one tar"},
	{"full_tar_compressed", "bytes", "the whole VM as one tar, compressed"},
	{"image_bytes", "bytes", "the image: config and every layer, compressed"},
	{"image_config_bytes", "bytes", "image bytes beyond the layers (config)"},
	{"image_layers", "count", "layers of the image"},
	{"build_image_bytes", "bytes", "virtual size the Docker engine reports for the built image (2014 pipeline)"},
	{"transfer_bytes", "bytes", "bytes that crossed the wire from the agent (0 for local sources)"},
	{"local_content_bytes", "bytes", "file contents taken from the converter's own trees instead of the wire"},
	{"seconds", "seconds", "the run, end to end"},
}

// RunResult is one run of a cell.
type RunResult struct {
	Cell     string              `json:"cell"`
	Repeat   int                 `json:"repeat"`
	OK       bool                `json:"ok"`
	Error    string              `json:"error,omitempty"`
	Started  time.Time           `json:"started"`
	Seconds  float64             `json:"seconds"`
	Metrics  map[string]float64  `json:"metrics"`
	Phases   []convert.PhaseTime `json:"phases"`
	Report   *convert.Report     `json:"report,omitempty"`   // conversions
	Baseline *BaselineReport     `json:"baseline,omitempty"` // baselines
}

// Stat is a figure's median and spread over a cell's successful runs.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// reportMetrics flattens a conversion report into metrics.
func reportMetrics(r *convert.Report) map[string]float64 {
	m := map[string]float64{
		"original_bytes": float64(r.OriginalBytes), "original_entries": float64(r.OriginalEntries),
		"base_bytes": float64(r.Base.Bytes), "transfer_bytes": float64(r.BytesTransferred),
		"local_content_bytes": float64(r.LocalContentBytes), "seconds": r.Seconds,
		"image_bytes": float64(r.Image.Bytes), "image_layers": float64(len(r.Image.Layers)),
	}
	if p := r.Packages; p != nil {
		if p.VM > 0 {
			m["packages_vm"], m["packages_base"] = float64(p.VM), float64(p.Base)
		}
		if p.Skipped == "" {
			m["packages_roots_before"], m["packages_roots_after"] = float64(p.RootsBefore), float64(p.RootsAfter)
			m["packages_installed"], m["packages_missing"] = float64(p.Installed), float64(len(p.Missing))
			m["packages_layer_bytes"], m["packages_install_seconds"] = float64(p.LayerBytes), p.InstallSeconds
			m["packages_cache_hit"] = b2f(p.CacheHit)
		}
	}
	d := r.Diff
	for k, v := range map[string]int64{
		"diff_added": d.Added + d.TypeChanged, "diff_added_bytes": d.AddedBytes, "diff_modified": d.Modified,
		"diff_modified_bytes": d.ModifiedBytes, "diff_metadata": d.Metadata, "diff_deleted": d.Deleted,
		"diff_deleted_bytes": d.DeletedBytes, "diff_delta_bytes": d.DeltaBytes,
	} {
		m[k] = float64(v)
	}
	if l := r.DiffLayer; l != nil {
		m["diff_layer_entries"], m["diff_layer_whiteouts"] = float64(l.Entries), float64(l.Whiteouts+l.Opaques)
		m["diff_layer_bytes"], m["diff_layer_content_bytes"] = float64(l.Bytes), float64(l.ContentBytes)
	}
	var layers int64
	for _, l := range r.Image.Layers {
		layers += l.Compressed
		switch l.Role {
		case "packages":
			m["packages_layer_compressed"] += float64(l.Compressed)
		case "vm-diff":
			m["diff_layer_compressed"] += float64(l.Compressed)
		case "runtime":
			m["runtime_layer_compressed"] += float64(l.Compressed)
		}
	}
	m["image_config_bytes"] = float64(r.Image.Bytes - layers)
	addPhases(m, r.Phases)
	return m
}

func addPhases(m map[string]float64, phases []convert.PhaseTime) {
	for _, p := range phases {
		m["phase."+p.Name] += p.Seconds
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// summarize computes each metric's median and spread over the successful runs.
func summarize(runs []*RunResult) map[string]Stat {
	vals := map[string][]float64{}
	for _, r := range runs {
		if !r.OK {
			continue
		}
		for k, v := range r.Metrics {
			vals[k] = append(vals[k], v)
		}
	}
	out := make(map[string]Stat, len(vals))
	for k, vs := range vals {
		out[k] = statOf(vs)
	}
	return out
}

func statOf(vs []float64) Stat {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// phaseNames returns the phase names that occur in the runs: the conversion's in pipeline
// order, then the others in order of appearance.
func phaseNames(cells []*CellResult) []string {
	names := []string{convert.PhaseConnect, convert.PhaseBase, convert.PhasePackages, convert.PhaseDiff, convert.PhaseRuntime, convert.PhaseAssemble}
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	for _, c := range cells {
		for _, r := range c.Runs {
			for _, p := range r.Phases {
				if !seen[p.Name] {
					seen[p.Name] = true
					names = append(names, p.Name)
				}
			}
		}
	}
	return names
}
