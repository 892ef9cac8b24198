package image

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/pkg/archive"
)

// Unpack applies img's layers in order to dir (created if missing), as the Docker engine does:
// ".wh.NAME" entries delete NAME from the layers below, ".wh..wh..opq" hides everything the
// layers below put in its directory, and a later entry replaces an earlier one. Names are checked:
// nothing is written outside dir, whether by "..", an absolute name, a hardlink, or a symlink met
// on the way (absolute symlinks count from dir, as in a chroot). Run as root, Unpack keeps
// owners, modes (set-id bits too), extended attributes (security.capability included) and
// device nodes; otherwise files belong to the caller and device nodes are skipped. Each layer
// is applied by archive.Apply.
func Unpack(ctx context.Context, img v1.Image, dir string) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("reading layers: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for k, l := range layers {
		if err := unpackLayer(ctx, dir, l); err != nil {
			d, _ := l.Digest()
			return fmt.Errorf("unpacking layer %d (%s): %w", k, d, err)
		}
	}
	return nil
}

func unpackLayer(ctx context.Context, dir string, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := archive.Apply(ctx, dir, rc, archive.Layer()); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc) // reach EOF, where the digest is checked
	return err
}
