package convert

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/builder"

	"github.com/vm2image/vm2image/pkg/image"
)

// applyLayer sets the tree the VM diff compares against: the base with the packages layer
// applied, cached by base and layer. When the layer was just built by the chroot backend, its
// regular files are moved from the build's overlay upper directory (the files the layer was
// written from, on the same filesystem) instead of written again from the layer: the layer
// still decides every entry, its metadata, links and whiteouts (archive.Donor).
func (r *run) applyLayer(ctx context.Context, layerPath, diffID string, built *builder.Result) error {
	key := "pkg-" + r.base.Digest.Hex[:16] + "-" + strings.TrimPrefix(diffID, "sha256:")
	dir, err := r.cachedRoot(ctx, key, func(ctx context.Context, dir string) error {
		start := time.Now()
		if err := copyTree(ctx, r.baseDir, dir); err != nil {
			return err
		}
		copied := time.Since(start)
		f, err := os.Open(layerPath)
		if err != nil {
			return fmt.Errorf("reading the packages layer: %w", err)
		}
		defer f.Close()
		opts := []archive.Option{archive.Layer()}
		upper, taken := "", 0
		if built != nil {
			if upper, err = built.TakeUpper(); err != nil {
				r.opts.Logf("taking the build's files: %v (the layer is applied whole)", err)
				upper = ""
			} else if upper != "" {
				opts = append(opts, archive.Donor(upper, &taken))
			}
		}
		if err := archive.Apply(ctx, dir, f, opts...); err != nil {
			return fmt.Errorf("applying the packages layer: %w", err)
		}
		applied := time.Since(start) - copied
		// What the layer left out goes now: no file of the entry keeps a second name there.
		if upper != "" {
			if err := os.RemoveAll(upper); err != nil {
				return fmt.Errorf("removing the build's files: %w", err)
			}
		}
		r.opts.Logf("base+packages tree: base copied in %s, layer applied in %s (%d files moved from the build), the rest removed in %s",
			copied.Round(time.Millisecond), applied.Round(time.Millisecond), taken, (time.Since(start) - copied - applied).Round(time.Millisecond))
		return nil
	})
	if err != nil {
		return err
	}
	r.oldDir, r.oldKey = dir, key
	return nil
}

// baseInEngine makes the base image available to the Docker engine and returns its reference.
func (r *run) baseInEngine(ctx context.Context) (string, error) {
	if r.base.Transport == image.TransportDaemon {
		return r.base.Ref, nil
	}
	engine, err := image.NewEngine(ctx)
	if err != nil {
		return "", err
	}
	tag := "vm2image-base/" + r.base.Digest.Hex[:16] + ":latest"
	if err := image.Load(ctx, r.base.Image, tag, engine); err != nil {
		return "", fmt.Errorf("loading the base into the engine for the docker builder: %w", err)
	}
	return tag, nil
}
