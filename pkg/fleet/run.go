package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/convert"
)

// Status of a VM in a run.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusSkipped = "done-before" // finished by an earlier run (--resume)
)

// Result is what the state directory keeps of one VM's conversion (NAME.json).
type Result struct {
	Name             string    `json:"name"`
	Status           string    `json:"status"`
	Error            string    `json:"error,omitempty"`
	FailedPhase      string    `json:"failed_phase,omitempty"`
	Seconds          float64   `json:"seconds"`
	BytesTransferred int64     `json:"bytes_transferred"`
	LayersNew        int       `json:"layers_new"`
	LayersExisting   int       `json:"layers_existing"`
	BytesUploaded    int64     `json:"bytes_uploaded"`
	ImageBytes       int64     `json:"image_bytes"`
	Image            string    `json:"image,omitempty"` // where it went: the pushed reference, the file
	Digest           string    `json:"digest,omitempty"`
	Finished         time.Time `json:"finished"`
	// Spec names what was converted, and how (the resolved entry and Options.Settings):
	// --resume skips a VM only when it is the same now.
	Spec string `json:"spec,omitempty"`

	// LayersMounted were mounted from the registry cache's repository, not uploaded.
	LayersMounted int `json:"layers_mounted"`
	// Where the image's own layers came from: built here, the local cache, the registry cache.
	LayersBuilt         int `json:"layers_built"`
	LayersLocalCache    int `json:"layers_local_cache"`
	LayersRegistryCache int `json:"layers_registry_cache"`
}

// Options drive a run.
type Options struct {
	Jobs     int    // conversions at once (default 1)
	StateDir string // results, one NAME.json per VM, and each VM's report NAME.report.json
	Resume   bool   // skip the VMs an earlier run converted (status ok in the state directory)
	// Settings are the run's settings that decide each VM's image beside the inventory (where
	// it goes, the conversion flags): part of every VM's Spec.
	Settings string
	// Convert converts one VM (the inventory's defaults filled in).
	Convert func(ctx context.Context, vm VM) (*convert.Report, error)
	// Event hears each VM's start and end, and what was skipped (default: nothing).
	Event func(e Event)
}

// Event is a line of a fleet's progress.
type Event struct {
	VM     string
	Kind   string // start, done, failed, skipped
	Result *Result
	Done   int // VMs finished so far (any status), and the total
	Total  int
}

// ErrBusy: another run holds the state directory.
var ErrBusy = errors.New("another fleet run uses this state directory")

// Run converts the inventory's VMs, opts.Jobs at a time, and returns one result per VM in the
// inventory's order. A VM that fails does not stop the others; the error is only for the run
// itself (the state directory, a cancelled context).
func Run(ctx context.Context, inv *Inventory, opts Options) ([]Result, error) {
	if opts.Jobs < 1 {
		opts.Jobs = 1
	}
	if opts.Event == nil {
		opts.Event = func(Event) {}
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	unlock, err := lockState(opts.StateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	vms := inv.Resolved()
	results := make([]Result, len(vms))
	var mu sync.Mutex
	done := 0
	finish := func(i int, kind string) {
		mu.Lock()
		done++
		e := Event{VM: vms[i].Name, Kind: kind, Result: &results[i], Done: done, Total: len(vms)}
		mu.Unlock()
		opts.Event(e)
	}
	sem := make(chan struct{}, opts.Jobs)
	var wg sync.WaitGroup
	for i, vm := range vms {
		if opts.Resume {
			if prev, err := readResult(opts.StateDir, vm.Name); err == nil && prev.Status == StatusOK && prev.Spec == spec(vm, opts) {
				results[i] = prev
				results[i].Status = StatusSkipped
				finish(i, "skipped")
				continue
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return results, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			opts.Event(Event{VM: vm.Name, Kind: "start", Total: len(vms)})
			results[i] = convertOne(ctx, vm, opts)
			if err := writeJSON(filepath.Join(opts.StateDir, vm.Name+".json"), results[i]); err != nil && results[i].Error == "" {
				results[i].Status, results[i].Error = StatusFailed, "saving the result: "+err.Error()
			}
			kind := "done"
			if results[i].Status == StatusFailed {
				kind = "failed"
			}
			finish(i, kind)
		}()
	}
	wg.Wait()
	return results, ctx.Err()
}

func convertOne(ctx context.Context, vm VM, opts Options) Result {
	start := time.Now()
	rep, err := opts.Convert(ctx, vm)
	res := Result{Name: vm.Name, Status: StatusOK, Seconds: time.Since(start).Seconds(), Finished: time.Now().UTC(), Spec: spec(vm, opts)}
	if rep != nil {
		if werr := writeJSON(filepath.Join(opts.StateDir, vm.Name+".report.json"), rep); werr != nil && err == nil {
			err = fmt.Errorf("saving the report: %w", werr)
		}
		res.BytesTransferred, res.ImageBytes, res.Digest = rep.BytesTransferred, rep.Image.Bytes, rep.Image.Digest
		res.FailedPhase = rep.FailedPhase
		res.Image = rep.Image.Pushed
		if res.Image == "" {
			res.Image = rep.Image.Output
		}
		if p := rep.Image.Push; p != nil {
			res.LayersNew, res.LayersExisting, res.BytesUploaded = p.LayersNew, p.LayersExisting, p.BytesNew
			res.LayersMounted = p.LayersMounted
		}
		countSources(&res, rep)
	}
	if err != nil {
		res.Status, res.Error = StatusFailed, err.Error()
	}
	return res
}

// spec is the digest of a VM's resolved inventory entry (its line aside) and the run's
// settings: a VM whose source, tag, base or options changed since is converted again.
func spec(vm VM, opts Options) string {
	vm.Line = 0
	b, _ := json.Marshal(struct {
		VM       VM     `json:"vm"`
		Settings string `json:"settings"`
	}{vm, opts.Settings})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readResult(dir, name string) (Result, error) {
	var r Result
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("reading %s's result: %w", name, err)
	}
	if r.Name != name {
		return r, fmt.Errorf("%s.json holds the result of %q", name, r.Name)
	}
	return r, nil
}

// writeJSON writes v to path atomically: a temporary file in the same directory, synced, renamed.
func writeJSON(path string, v any) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// lockState takes the state directory for this run; a second run on it fails at once.
func lockState(dir string) (func(), error) {
	l, err := cache.TryLock(filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("locking the state directory: %w", err)
	}
	if l == nil {
		return nil, fmt.Errorf("%w: %s", ErrBusy, dir)
	}
	return l.Release, nil
}

// countSources counts where the image's own layers came from (the report's layer sources).
func countSources(res *Result, rep *convert.Report) {
	for _, l := range rep.Image.Layers {
		switch {
		case l.Source == convert.SourceBuilt:
			res.LayersBuilt++
		case l.Source == convert.SourceLocalCache:
			res.LayersLocalCache++
		case strings.HasPrefix(l.Source, "registry cache"):
			res.LayersRegistryCache++
		}
	}
}
