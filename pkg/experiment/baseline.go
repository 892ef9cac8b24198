package experiment

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/vm2image/vm2image/internal/ctxio"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// BaselineReport holds the figures of a baseline run.
type BaselineReport struct {
	Compression       string `json:"compression"`
	FullTarBytes      int64  `json:"full_tar_bytes"`      // the whole VM as one tar
	FullTarCompressed int64  `json:"full_tar_compressed"` // ... compressed
	Entries           int64  `json:"entries"`             // its entries
	WireBytes         int64  `json:"wire_bytes"`          // bytes from the agent (0 for local sources)

	// The 2014 pipeline's figures.
	Packages                bool     `json:"packages,omitempty"`
	PackagesLayer           string   `json:"packages_layer,omitempty"`
	BaseRef                 string   `json:"base_ref,omitempty"`
	BaseBytes               int64    `json:"base_bytes,omitempty"` // base layers, compressed
	BaseLayers              int      `json:"base_layers,omitempty"`
	BaseFilesBytes          int64    `json:"base_files_bytes,omitempty"`
	BasePackagesFilesBytes  int64    `json:"base_packages_files_bytes,omitempty"`
	PackagesLayerBytes      int64    `json:"packages_layer_bytes,omitempty"`
	PackagesLayerCompressed int64    `json:"packages_layer_compressed,omitempty"`
	Added                   int64    `json:"added,omitempty"` // entries rsync copied that the base lacks
	AddedBytes              int64    `json:"added_bytes,omitempty"`
	Modified                int64    `json:"modified,omitempty"` // entries rsync copied that the base has
	ModifiedBytes           int64    `json:"modified_bytes,omitempty"`
	Deleted                 int64    `json:"deleted,omitempty"` // the reverse rsync's deletions
	DeletedBytes            int64    `json:"deleted_bytes,omitempty"`
	DeletedSample           []string `json:"deleted_sample,omitempty"` // the first few deleted paths
	LayerEntries            int64    `json:"layer_entries,omitempty"`
	LayerBytes              int64    `json:"layer_bytes,omitempty"` // tar of rsync's output
	LayerCompressed         int64    `json:"layer_compressed,omitempty"`
	RemoveLayerCompressed   int64    `json:"remove_layer_compressed,omitempty"` // the rm script's layer
	ImageBytes              int64    `json:"image_bytes,omitempty"`
	BuildImageBytes         int64    `json:"build_image_bytes,omitempty"` // virtual size in the engine
	BuildSkipped            string   `json:"build_skipped,omitempty"`
}

// phaser times named steps.
type phaser struct{ phases []convert.PhaseTime }

func (p *phaser) do(name string, fn func() error) error {
	t0 := time.Now()
	err := fn()
	p.phases = append(p.phases, convert.PhaseTime{Name: name, Seconds: time.Since(t0).Seconds()})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// runOneLayer measures the whole VM as one layer: the source's filesystem exported as one tar
// stream and compressed as a layer would be (nothing is written to disk).
func (r *runner) runOneLayer(ctx context.Context, ps *preparedSource, c Cell, run *RunResult) error {
	b := &BaselineReport{Compression: c.Compression}
	run.Baseline = b
	var ph phaser
	err := ph.do("export", func() error {
		return exportCompressed(ctx, ps, c.Compression, "", io.Discard, b)
	})
	run.Phases = ph.phases
	if err != nil {
		return err
	}
	run.Metrics = map[string]float64{
		"full_tar_bytes": float64(b.FullTarBytes), "full_tar_compressed": float64(b.FullTarCompressed),
		"original_entries": float64(b.Entries), "image_bytes": float64(b.FullTarCompressed), "image_layers": 1,
		"transfer_bytes": float64(b.WireBytes),
	}
	addPhases(run.Metrics, run.Phases)
	return nil
}

// exportCompressed streams the source's whole filesystem (wire compression wireComp, or the
// source's default when empty) through compression into w, counting the bytes into b.
func exportCompressed(ctx context.Context, ps *preparedSource, compression, wireComp string, w io.Writer, b *BaselineReport) error {
	so := ps.opts
	if wireComp != "" {
		so.Compression = wireComp
	}
	src, err := source.Open(ctx, ps.source, so)
	if err != nil {
		return err
	}
	defer src.Close()
	ts, err := src.Filesystem(ctx, wire.TreeArgs{Excludes: ps.excludes(), Compression: wireComp})
	if err != nil {
		return err
	}
	defer ts.Close()
	raw, zc := &countWriter{}, &countWriter{w: w}
	zw, err := newCompressor(zc, compression)
	if err != nil {
		return err
	}
	if _, err := ctxio.Copy(ctx, io.MultiWriter(raw, zw), ts); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	b.FullTarBytes, b.FullTarCompressed, b.WireBytes = raw.n, zc.n, ts.WireBytes()
	b.Entries = ts.Result().Stats.Entries
	return nil
}

// newCompressor compresses as the image's layers are: pgzip or zstd at their default levels,
// on every CPU.
func newCompressor(w io.Writer, compression string) (io.WriteCloser, error) {
	conc := runtime.GOMAXPROCS(0)
	if compression == "zstd" {
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(conc))
	}
	zw, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if err := zw.SetConcurrency(1<<20, 2*conc); err != nil {
		return nil, err
	}
	return zw, nil
}

// countWriter counts what it writes to w (nothing when w is nil).
type countWriter struct {
	w io.Writer
	n int64
}

var _ io.Writer = (*countWriter)(nil)

func (c *countWriter) Write(p []byte) (int, error) {
	if c.w != nil {
		n, err := c.w.Write(p)
		c.n += int64(n)
		return n, err
	}
	c.n += int64(len(p))
	return len(p), nil
}
