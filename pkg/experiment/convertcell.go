package experiment

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/image"
)

// runConvert converts the source with the cell's settings into a docker-archive (kept in
// OutDir/images with KeepImages, else removed) and records the report's figures.
func (r *runner) runConvert(ctx context.Context, ps *preparedSource, c Cell, run *RunResult) error {
	dir := filepath.Join(r.work, "images")
	if r.opts.KeepImages {
		dir = filepath.Join(r.opts.OutDir, "images")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out := filepath.Join(dir, runName(c.ID, run.Repeat)+".tar")
	if !r.opts.KeepImages {
		defer os.RemoveAll(out + ".context")
		defer os.Remove(out)
	}
	opts := convert.Options{
		Source: ps.source, SourceOptions: ps.opts, Output: out,
		Tag:  "vm2image-experiment/" + strings.ToLower(c.Source) + ":latest",
		Base: ps.base, NoPackages: !c.Packages, Builder: convert.Builder(r.suite.Options.Builder),
		Strategy: diff.Strategy(c.Strategy), Transfer: convert.Transfer(c.Transfer), Excludes: ps.spec.Excludes,
		Compression: image.Compression(c.Compression), WorkDir: r.work, CacheDir: r.cache,
		InitBinary: r.opts.InitBinary, Logf: r.opts.Logf, Force: true, // its own outputs, named per run
	}
	rep, err := convert.Run(ctx, opts)
	if rep != nil {
		run.Report = rep
		run.Phases = rep.Phases
	}
	if err != nil {
		return fmt.Errorf("converting: %w", err)
	}
	run.Metrics = reportMetrics(rep)
	return nil
}

// packagesLayer finds the packages layer an earlier successful conversion of the source built:
// its file in the cache, and the key. Empty when the base already held every package.
func (r *runner) packagesLayer(source string) (path string, err error) {
	for _, c := range r.cells {
		if c.Source != source || c.Kind != KindConvert || !c.Packages {
			continue
		}
		for rep := 1; rep <= r.repeat; rep++ {
			run := r.done[runName(c.ID, rep)]
			if run == nil || !run.OK || run.Report == nil || run.Report.Packages == nil {
				continue
			}
			p := run.Report.Packages
			if p.Skipped != "" {
				return "", nil
			}
			path := filepath.Join(cache.RootOrDefault(r.cache).Path(cache.Layers), p.CacheKey, "layer.tar")
			if _, err := os.Stat(path); err == nil {
				return path, nil
			}
		}
	}
	return "", errNoPackagesLayer
}
