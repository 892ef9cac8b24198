package experiment

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/internal/tailbuf"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/image"
)

// run2014 runs the 2014 pipeline as the journal describes it: the whole VM as a compressed tar
// (sent over the wire gzipped by a remote agent), unpacked on the converter; the base image
// (with the packages layer applied when the cell has packages) unpacked beside it;
// `rsync -aH --compare-dest=BASE/ VM/ OUT/` for what changed and a dry-run
// `rsync --delete VM/ BASE/` for what the VM deleted; `tar -C OUT -cf layer.tar .`; and the image
// built by `docker build` (FROM the base, ADD layer.tar, RUN rm of the deletions).
func (r *runner) run2014(ctx context.Context, ps *preparedSource, c Cell, run *RunResult) error {
	b := &BaselineReport{Compression: "gzip", Packages: c.Packages}
	run.Baseline = b
	work, err := os.MkdirTemp(r.work, "pipeline-2014-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var ph phaser
	defer func() { run.Phases = ph.phases }()
	vmTar, vm, base, out := filepath.Join(work, "vm.tar.gz"), filepath.Join(work, "vm"), filepath.Join(work, "base"), filepath.Join(work, "out")
	var baseImg v1.Image
	var deleted []string
	steps := []struct {
		name string
		fn   func() error
	}{
		{"export", func() error { return exportToFile(ctx, ps, vmTar, b) }},
		{"unpack", func() error { return untar(ctx, vmTar, vm) }},
		{"base", func() (err error) { baseImg, err = r.base2014(ctx, ps, c, base, b); return err }},
		{"rsync", func() error { return rsyncCompare(ctx, vm, base, out, ps.excludes(), b) }},
		{"deleted", func() (err error) { deleted, err = rsyncDeleted(ctx, vm, base, ps.excludes(), b); return err }},
		{"tar", func() error { return tarLayer(ctx, out, filepath.Join(work, "layer.tar"), deleted, b) }},
		{"build", func() error { return r.build2014(ctx, ps, c, baseImg, work, deleted, b) }},
		{"cleanup", func() error { return os.RemoveAll(work) }},
	}
	for _, s := range steps {
		if err := ph.do(s.name, s.fn); err != nil {
			return err
		}
	}
	b.ImageBytes = b.BaseBytes + b.PackagesLayerCompressed + b.LayerCompressed + b.RemoveLayerCompressed
	run.Phases = ph.phases
	run.Metrics = metrics2014(b)
	addPhases(run.Metrics, run.Phases)
	// The conversion's time, as convert reports it: without removing the scratch trees (which
	// the 2014 prototype left in /tmp).
	for _, p := range run.Phases {
		if p.Name != "cleanup" {
			run.Metrics["seconds"] += p.Seconds
		}
	}
	return nil
}

func metrics2014(b *BaselineReport) map[string]float64 {
	m := map[string]float64{
		"full_tar_bytes": float64(b.FullTarBytes), "full_tar_compressed": float64(b.FullTarCompressed),
		"original_entries": float64(b.Entries), "transfer_bytes": float64(b.FullTarCompressed),
		"base_bytes": float64(b.BaseBytes), "base_files_bytes": float64(b.BaseFilesBytes),
		"diff_added": float64(b.Added), "diff_added_bytes": float64(b.AddedBytes),
		"diff_modified": float64(b.Modified), "diff_modified_bytes": float64(b.ModifiedBytes),
		"diff_deleted": float64(b.Deleted), "diff_deleted_bytes": float64(b.DeletedBytes),
		"diff_layer_entries": float64(b.LayerEntries), "diff_layer_bytes": float64(b.LayerBytes),
		"diff_layer_compressed": float64(b.LayerCompressed), "image_bytes": float64(b.ImageBytes),
		"image_layers": float64(b.BaseLayers + 1), "build_image_bytes": float64(b.BuildImageBytes),
	}
	if b.Deleted > 0 {
		m["image_layers"]++
	}
	if b.Packages {
		m["base_packages_files_bytes"] = float64(b.BasePackagesFilesBytes)
		m["packages_layer_bytes"] = float64(b.PackagesLayerBytes)
		m["packages_layer_compressed"] = float64(b.PackagesLayerCompressed)
		m["image_layers"]++
	}
	return m
}

// exportToFile writes the VM's filesystem as a gzipped tar: over the wire gzipped by the
// agent, as the 2014 agent sent it, and compressed again into the file.
func exportToFile(ctx context.Context, ps *preparedSource, path string, b *BaselineReport) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = exportCompressed(ctx, ps, "gzip", "gzip", bw, b)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func untar(ctx context.Context, archive, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return command(ctx, "tar", "-C", dir, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpzf", archive)
}

// base2014 unpacks the base image into dir and applies the packages layer when the cell has
// packages, measuring both trees' files.
func (r *runner) base2014(ctx context.Context, ps *preparedSource, c Cell, dir string, b *BaselineReport) (v1.Image, error) {
	ref, err := r.baseRef(ps)
	if err != nil {
		return nil, err
	}
	base, err := image.Resolve(ctx, ref, image.ResolveOptions{})
	if err != nil {
		return nil, err
	}
	b.BaseRef = ref
	layers, err := base.Image.Layers()
	if err != nil {
		return nil, err
	}
	b.BaseLayers = len(layers)
	for _, l := range layers {
		sz, err := l.Size()
		if err != nil {
			return nil, err
		}
		b.BaseBytes += sz
	}
	if err := image.Unpack(ctx, base.Image, dir); err != nil {
		return nil, err
	}
	if b.BaseFilesBytes, err = filesBytes(dir); err != nil {
		return nil, err
	}
	if !c.Packages {
		return base.Image, nil
	}
	if b.PackagesLayer, err = r.packagesLayer(c.Source); err != nil || b.PackagesLayer == "" {
		return base.Image, err
	}
	if err := applyLayerFile(ctx, dir, b.PackagesLayer, b); err != nil {
		return nil, err
	}
	b.BasePackagesFilesBytes, err = filesBytes(dir)
	return base.Image, err
}

// baseRef is the base the source's conversions use: the suite's, or the one "auto" found.
func (r *runner) baseRef(ps *preparedSource) (string, error) {
	if ps.base != "auto" {
		return ps.base, nil
	}
	for _, run := range r.done {
		if rep := run.Report; run.OK && rep != nil && r.cellByID(run.Cell).Source == ps.spec.Name && rep.Base.Ref != "" {
			return transportRef(rep.Base), nil
		}
	}
	return "", errors.New("the base is auto and no conversion of this source found it: name the base in the suite")
}

func transportRef(b convert.Base) string {
	switch b.Transport {
	case image.TransportRegistry:
		return "registry://" + b.Ref
	case image.TransportHTTP:
		return b.Ref
	}
	return b.Transport + ":" + b.Ref
}

func applyLayerFile(ctx context.Context, dir, layer string, b *BaselineReport) error {
	f, err := os.Open(layer)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		b.PackagesLayerBytes = fi.Size()
	}
	zc := &countWriter{}
	zw, err := newCompressor(zc, "gzip")
	if err != nil {
		return err
	}
	if err := image.ApplyLayer(ctx, dir, io.TeeReader(f, zw)); err != nil {
		return fmt.Errorf("applying the packages layer: %w", err)
	}
	if _, err := io.Copy(zw, f); err != nil { // the tar's end padding
		return err
	}
	err = zw.Close()
	b.PackagesLayerCompressed = zc.n
	return err
}

// filesBytes sums the sizes of the regular files under dir, each inode once (as du does).
func filesBytes(dir string) (int64, error) {
	var n int64
	seen := map[[2]uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		n += fi.Size()
		return nil
	})
	return n, err
}

func rsyncArgs(excludes []string, args ...string) []string {
	var out []string
	for _, e := range excludes {
		out = append(out, "--exclude="+e)
	}
	return append(out, args...)
}

// rsyncCompare copies into out what differs from base (rsync's quick check) and counts it:
// entries the base has are modifications, the others additions (directories only when new).
func rsyncCompare(ctx context.Context, vm, base, out string, excludes []string, b *BaselineReport) error {
	args := rsyncArgs(excludes, "-aH", "--numeric-ids", "--compare-dest="+base+"/", vm+"/", out+"/")
	if err := rsync(ctx, args...); err != nil {
		return err
	}
	return filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == out {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		b.LayerEntries++
		old, oerr := os.Lstat(filepath.Join(base, rel))
		if d.IsDir() && oerr == nil && old.IsDir() {
			return nil
		}
		var size int64
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			size = fi.Size()
		}
		if oerr == nil {
			b.Modified++
			b.ModifiedBytes += size
		} else {
			b.Added++
			b.AddedBytes += size
		}
		return nil
	})
}

// rsyncDeleted lists what a reverse rsync (base made like the VM, dry run) would delete.
func rsyncDeleted(ctx context.Context, vm, base string, excludes []string, b *BaselineReport) ([]string, error) {
	args := rsyncArgs(excludes, "-aHn8", "--numeric-ids", "--delete", "--out-format=%i %n", vm+"/", base+"/")
	cmd := exec.CommandContext(ctx, "rsync", args...)
	var stderr tailbuf.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err := rsyncStatus(err, &stderr); err != nil {
		return nil, err
	}
	var deleted []string
	sc := bufio.NewScanner(bytes.NewReader(outb))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "*deleting")
		if !ok {
			continue
		}
		p := strings.TrimSuffix(strings.TrimLeft(rest, " "), "/")
		deleted = append(deleted, p)
		if len(b.DeletedSample) < 50 {
			b.DeletedSample = append(b.DeletedSample, p)
		}
		b.Deleted++
		if fi, err := os.Lstat(filepath.Join(base, p)); err == nil && fi.Mode().IsRegular() {
			b.DeletedBytes += fi.Size()
		}
	}
	return deleted, sc.Err()
}

func rsync(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "rsync", args...)
	var stderr tailbuf.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	return rsyncStatus(cmd.Run(), &stderr)
}

// rsyncStatus accepts rsync's "some files vanished" (24) as success.
func rsyncStatus(err error, stderr *tailbuf.Buffer) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 24 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rsync: %w: %s", err, stderr.String())
	}
	return nil
}

func command(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, tailbuf.Of(out))
	}
	return nil
}
