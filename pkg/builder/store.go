package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/layer"
	"github.com/vm2image/vm2image/pkg/source"
)

// LayerExcludes are left out of the packages layer (anchored fswalk patterns): package caches,
// index lists, logs and backup files the installation leaves behind, scratch space, runtime
// state and pseudo filesystems. The VM's own copies of them, if any, come in its diff layer.
var LayerExcludes = []string{
	"/var/cache/apt/*", "/var/lib/apt/lists/*", "/var/log/*",
	"/var/cache/debconf/*-old", "/var/lib/dpkg/*-old",
	"/var/cache/dnf/*", "/var/cache/yum/*", "/var/cache/zypp/*", "/var/cache/apk/*", "/var/cache/pacman/pkg/*",
	"/tmp/*", "/run/*", "/proc/*", "/sys/*", "/dev/*",
}

// store makes the layer of the built tree and caches it; a build with transient errors keeps
// its layer in the work directory instead, so the next build tries again.
func (b *build) store(ctx context.Context, key string, lock *fileLock) error {
	tree, err := b.be.tree(ctx)
	if err != nil {
		return err
	}
	if b.opts.Backend == Docker {
		if err := resetDockerFiles(tree, b.in.BaseRoot); err != nil {
			return err
		}
		b.res.Exported = tree
	} else {
		b.res.Root = tree
		b.res.takeUpper = b.takeUpper
	}
	tmp, err := newTemp(b.opts.CacheDir, key)
	if err != nil {
		return err
	}
	start := time.Now()
	st, err := writeLayer(ctx, b.in.BaseRoot, tree, filepath.Join(tmp, layerFile), b.opts.Logf)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	b.res.LayerTime = time.Since(start)
	b.res.LayerDiffID, b.res.LayerSize = st.DiffID, st.Bytes
	b.opts.Logf("packages layer %s: %d entries, %d bytes, in %s", st.DiffID, st.Entries, st.Bytes, b.res.LayerTime.Round(time.Millisecond))
	if b.transient {
		b.opts.Logf("not caching the layer: the build had errors that may not happen again")
		final := filepath.Join(b.workDir, layerFile)
		err := os.Rename(filepath.Join(tmp, layerFile), final)
		_ = os.RemoveAll(tmp)
		lock.release()
		b.res.LayerPath = final
		return err
	}
	if err := writeMeta(tmp, metaOf(b.res, b.in, b.opts)); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("writing cache entry: %w", err)
	}
	if err := commit(b.opts.CacheDir, key, tmp, lock); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	b.res.LayerPath = filepath.Join(b.opts.CacheDir, key, layerFile)
	return nil
}

// takeUpper unmounts the chroot backend's overlay and returns its upper directory.
func (b *build) takeUpper() (string, error) {
	var c *chroot
	switch be := b.be.(type) {
	case *chroot:
		c = be
	case *outside:
		c = be.chroot
	default:
		return "", nil
	}
	killRootProcesses(c.root, b.opts.Logf)
	if err := c.unmountAll(); err != nil {
		return "", err
	}
	return c.upper, nil
}

// writeLayer writes the OCI layer tar that turns base into tree to dst.
func writeLayer(ctx context.Context, base, tree, dst string, logf func(string, ...any)) (layer.LayerStats, error) {
	oldSrc, err := source.OpenDir(base, "base")
	if err != nil {
		return layer.LayerStats{}, err
	}
	defer oldSrc.Close()
	newSrc, err := source.OpenDir(tree, "built")
	if err != nil {
		return layer.LayerStats{}, err
	}
	defer newSrc.Close()
	res, err := diff.Trees(ctx, oldSrc, newSrc, diff.Options{Strategy: diff.Checksum, Excludes: LayerExcludes})
	if err != nil {
		return layer.LayerStats{}, fmt.Errorf("comparing base and built root: %w", err)
	}
	for _, p := range res.Problems {
		logf("diff problem in the %s tree: %s: %s", p.Tree, p.Path, p.Err)
	}
	f, err := os.Create(dst)
	if err != nil {
		return layer.LayerStats{}, fmt.Errorf("creating layer: %w", err)
	}
	st, err := layer.Write(ctx, f, res, newSrc, layer.Options{})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return st, fmt.Errorf("writing packages layer: %w", err)
	}
	for _, p := range st.Problems {
		logf("layer problem: %s: %s", p.Path, p.Err)
	}
	return st, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
