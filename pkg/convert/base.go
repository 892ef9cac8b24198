package convert

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/image"
)

// baseRef picks the base image reference: the one given, or the table's for the VM's OS.
func (r *run) baseRef() (string, error) {
	if r.opts.Base != "auto" {
		return r.opts.Base, nil
	}
	table := image.DefaultBases()
	if r.opts.Config != nil {
		table = r.opts.Config.BaseTable()
	}
	os := r.info.OS
	if ref, ok := table.Lookup(os.ID, os.VersionID); ok {
		return ref, nil
	}
	for _, like := range os.IDLike {
		if ref, ok := table.Lookup(like, os.VersionID); ok {
			return ref, nil
		}
	}
	return "", fmt.Errorf("no base image known for %s %s: give --base REF or a config file with bases", os.ID, os.VersionID)
}

func (r *run) resolveBase(ctx context.Context) error {
	ref, err := r.baseRef()
	if err != nil {
		return err
	}
	// The image store stays in use until the conversion ends: the base's blobs are read again
	// when the image is written.
	hold, err := r.cacheRoot().UseStore(ctx, cache.Images, r.opts.Notef)
	if err != nil {
		return err
	}
	r.cleanup = append(r.cleanup, func() error { hold.Release(); return nil })
	start := time.Now()
	r.base, err = image.Resolve(ctx, ref, image.ResolveOptions{
		CacheDir: r.cacheRoot().Path(cache.Images),
		Platform: v1.Platform{OS: "linux", Architecture: r.info.Arch},
		Insecure: r.opts.Insecure,
		Progress: func(done, total int64) { r.opts.Progress.Bytes(PhaseBase, done, total) },
	})
	if err != nil {
		return err
	}
	b := &r.report.Base
	b.Ref, b.Transport, b.Digest, b.Tried = r.base.Ref, r.base.Transport, r.base.Digest.String(), r.base.Tried
	layers, err := r.base.Image.Layers()
	if err != nil {
		return fmt.Errorf("reading base layers: %w", err)
	}
	for _, l := range layers {
		sz, err := l.Size()
		if err != nil {
			return err
		}
		b.Bytes += sz
	}
	r.opts.Logf("base image %s (%s, %s) resolved in %s", b.Ref, b.Transport, b.Digest, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	r.oldKey = "base-" + r.base.Digest.Hex
	r.baseDir, err = r.cachedRoot(ctx, r.oldKey, func(ctx context.Context, dir string) error {
		if err := image.Unpack(ctx, r.base.Image, dir); err != nil {
			return fmt.Errorf("unpacking base image: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.opts.Logf("base unpacked (or found unpacked) in %s", time.Since(start).Round(time.Millisecond))
	r.oldDir = r.baseDir
	return nil
}
