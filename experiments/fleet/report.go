package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/fleet"
)

// Step is the registry after one more VM of a strategy's run (in the order the workers
// finished them).
type Step struct {
	VM             string  `json:"vm"`
	Stored         int64   `json:"stored_bytes"`   // the registry's blob directory
	Uploaded       int64   `json:"uploaded_bytes"` // the worker's bytes_uploaded (one-layer: the VM's layer)
	LayersNew      int     `json:"layers_new"`
	LayersExisting int     `json:"layers_existing"`
	Seconds        float64 `json:"seconds"` // the pod's wall time (docker run to exit)
	Worker         int     `json:"worker"`
}

// Run is one strategy's run over the fleet.
type Run struct {
	Start int64  `json:"start_stored_bytes"` // before the first VM (the bases)
	Steps []Step `json:"steps"`
	// Roles: the distinct layers the run's images hold, by role: count and compressed bytes.
	Roles map[string]RoleBytes `json:"roles,omitempty"`
	// FromOtherWorker: layers of the images (base layers left out) that an image the other
	// worker had finished before already held: what the workers shared through the registry.
	FromOtherWorker RoleBytes `json:"from_other_worker"`
	// Failed: the VMs whose pod failed, and the first error line of its log.
	Failed map[string]string `json:"failed,omitempty"`
	// Sources: the images' layers (base layers left out) by where the worker took them: built,
	// local cache (the worker's own), registry cache (the cache repository both workers share).
	Sources map[string]RoleBytes `json:"sources,omitempty"`
	// Installs: the conversions that ran the package installer (the others took the packages
	// from a cache).
	Installs int `json:"installs"`
}

// RoleBytes sums distinct layers of one role.
type RoleBytes struct {
	Layers int   `json:"layers"`
	Bytes  int64 `json:"bytes"`
}

// Results is results.json.
type Results struct {
	Date    string               `json:"date"`
	Meta    map[string]string    `json:"meta"`
	VMs     []VM                 `json:"vms"`
	Floor   int64                `json:"floor_bytes"`
	Runs    map[string]*Run      `json:"runs"` // one-layer, single, grained, warm
	Checks  []Check              `json:"checks"`
	Verify  map[string]string    `json:"verify"`
	WarmNew map[string]RoleBytes `json:"warm_new_blobs_by_role"`
	Ratios  map[string]float64   `json:"ratios"`
}

// Check is one service check of an image.
type Check struct {
	VM     string `json:"vm"`
	Check  string `json:"check"`
	Result string `json:"result"`
}

func report(s *Suite, work, out string) error {
	res := &Results{VMs: s.VMs, Runs: map[string]*Run{}, Verify: map[string]string{}, Meta: map[string]string{}}
	if err := readFields(filepath.Join(work, "meta"), func(f []string) { res.Meta[f[0]] = strings.Join(f[1:], " ") }); err != nil {
		return err
	}
	res.Date = res.Meta["date"]
	b, err := os.ReadFile(filepath.Join(work, "floor"))
	if err != nil {
		return fmt.Errorf("reading the floor: %w", err)
	}
	if res.Floor, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
		return fmt.Errorf("the floor: %w", err)
	}
	one := &Run{}
	if err := readFields(filepath.Join(work, "one-layer"), func(f []string) {
		one.Steps = append(one.Steps, Step{VM: f[0], Stored: atoi(f[1]), Uploaded: atoi(f[2]), LayersNew: 1})
	}); err != nil {
		return err
	}
	res.Runs["one-layer"] = one
	layers := map[string]map[string]convert.LayerSizes{} // run -> digest -> layer
	for _, label := range []string{"single", "grained", "warm"} {
		r, l, err := readRun(work, label)
		if err != nil {
			return err
		}
		res.Runs[label], layers[label] = r, l
	}
	if err := readLines(filepath.Join(work, "checks"), func(line string) {
		if f := strings.SplitN(line, "\t", 3); len(f) == 3 {
			res.Checks = append(res.Checks, Check{VM: f[0], Check: f[1], Result: f[2]})
		}
	}); err != nil {
		return err
	}
	if err := readLines(filepath.Join(work, "verify"), func(line string) {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			res.Verify[k] = v
		}
	}); err != nil {
		return err
	}
	res.WarmNew = map[string]RoleBytes{}
	if err := readLines(filepath.Join(work, "warm-new-blobs"), func(d string) {
		role := "other (manifests, configs)"
		if l, ok := layers["warm"][d]; ok {
			role = l.Role
		}
		rb := res.WarmNew[role]
		rb.Layers++
		if fi, err := os.Stat(blobPath(work, d)); err == nil {
			rb.Bytes += fi.Size()
		}
		res.WarmNew[role] = rb
	}); err != nil {
		return err
	}
	res.Ratios = ratios(res)
	if err := writeJSON(filepath.Join(out, "results.json"), res); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(out, "fleet.svg"), []byte(plot(res))); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(out, "results.md"), []byte(markdown(res)))
}

// readRun reads a strategy's events and the workers' results and reports.
func readRun(work, label string) (*Run, map[string]convert.LayerSizes, error) {
	r := &Run{Roles: map[string]RoleBytes{}, Sources: map[string]RoleBytes{}}
	var names []string
	var ends, starts []float64
	if err := readFields(filepath.Join(work, label+".events"), func(f []string) {
		if f[0] == "start" {
			r.Start = atoi(f[1])
			return
		}
		if len(f) < 5 {
			return
		}
		w, _ := strconv.Atoi(f[4])
		r.Steps = append(r.Steps, Step{VM: f[0], Stored: atoi(f[1]), Worker: w})
		names = append(names, f[0])
		ends, starts = append(ends, atof(f[2])), append(starts, atof(f[3]))
	}); err != nil {
		return nil, nil, err
	}
	r.Failed = map[string]string{}
	_ = readLines(filepath.Join(work, label+".failed"), func(line string) { // absent: none failed
		if k, v, ok := strings.Cut(line, "\t"); ok {
			r.Failed[k] = v
		}
	})
	layers := map[string]convert.LayerSizes{}
	firstWorker := map[string]int{} // digest -> the worker of the first finished image holding it
	for i, name := range names {
		var fr fleet.Result
		if err := readJSON(filepath.Join(work, "res-"+label, name+".json"), &fr); err != nil {
			return nil, nil, err
		}
		st := &r.Steps[i]
		st.Uploaded, st.LayersNew, st.LayersExisting, st.Seconds = fr.BytesUploaded, fr.LayersNew, fr.LayersExisting, ends[i]-starts[i]
		var rep convert.Report
		if err := readJSON(filepath.Join(work, "res-"+label, name+".report.json"), &rep); err != nil {
			return nil, nil, err
		}
		if rep.Packages != nil && rep.Packages.Skipped == "" && !rep.Packages.CacheHit {
			r.Installs++
		}
		for _, l := range rep.Image.Layers {
			if l.Role != "base" {
				src := l.Source
				if strings.HasPrefix(src, "registry cache") {
					src = "registry cache"
				}
				rb := r.Sources[src]
				rb.Layers++
				rb.Bytes += l.Compressed
				r.Sources[src] = rb
			}
			if w, ok := firstWorker[l.Digest]; ok && w != st.Worker && l.Role != "base" {
				r.FromOtherWorker.Layers++
				r.FromOtherWorker.Bytes += l.Compressed
			} else if !ok {
				firstWorker[l.Digest] = st.Worker
			}
			if _, ok := layers[l.Digest]; !ok {
				layers[l.Digest] = l
				rb := r.Roles[l.Role]
				rb.Layers++
				rb.Bytes += l.Compressed
				r.Roles[l.Role] = rb
			}
		}
	}
	return r, layers, nil
}

func blobPath(work, digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	if len(hex) < 2 {
		return ""
	}
	return filepath.Join(work, "reg-grained/data/docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
}

// ratios: the final stored bytes of each strategy against each other and the floor.
func ratios(res *Results) map[string]float64 {
	last := func(run string) float64 {
		r := res.Runs[run]
		if r == nil || len(r.Steps) == 0 {
			return 0
		}
		return float64(r.Steps[len(r.Steps)-1].Stored)
	}
	o, s, g, f := last("one-layer"), last("single"), last("grained"), float64(res.Floor)
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	return map[string]float64{
		"grained_per_single": div(g, s), "grained_per_floor": div(g, f),
		"single_per_floor": div(s, f), "one_layer_per_floor": div(o, f), "grained_per_one_layer": div(g, o),
	}
}

func atoi(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

func atof(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

func readLines(path string, fn func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			fn(sc.Text())
		}
	}
	return sc.Err()
}

func readFields(path string, fn func([]string)) error {
	return readLines(path, func(l string) {
		if f := strings.Fields(l); len(f) >= 2 {
			fn(f)
		}
	})
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'))
}

// writeAtomic writes path through a temporary file renamed into place.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// sortedRoles lists a run's roles by bytes, largest first.
func sortedRoles(m map[string]RoleBytes) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]].Bytes != m[keys[j]].Bytes {
			return m[keys[i]].Bytes > m[keys[j]].Bytes
		}
		return keys[i] < keys[j]
	})
	return keys
}
