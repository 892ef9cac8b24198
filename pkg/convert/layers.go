package convert

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/vm2image/vm2image/pkg/image"
)

// applyLayer sets the tree the VM diff compares against: the base with the packages layer
// applied, cached by base and layer.
func (r *run) applyLayer(ctx context.Context, layerPath, diffID string) error {
	key := "pkg-" + r.base.Digest.Hex[:16] + "-" + strings.TrimPrefix(diffID, "sha256:")
	dir, err := r.cachedRoot(ctx, key, func(ctx context.Context, dir string) error {
		if err := copyTree(ctx, r.baseDir, dir); err != nil {
			return err
		}
		f, err := os.Open(layerPath)
		if err != nil {
			return fmt.Errorf("reading the packages layer: %w", err)
		}
		defer f.Close()
		if err := image.ApplyLayer(ctx, dir, f); err != nil {
			return fmt.Errorf("applying the packages layer: %w", err)
		}
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
