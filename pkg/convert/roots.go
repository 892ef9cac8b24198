package convert

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/vm2image/vm2image/pkg/cache"
)

// Unpacked roots are cached under the cache root (kind cache.Roots): the base image unpacked
// (keyed by its digest) and the base with a packages layer applied (keyed by both), so a
// conversion of a VM whose base and package set were seen before unpacks nothing. The cached
// trees are read-only: the builder mounts the base as an overlay's lower layer and the diff only
// reads. Concurrent conversions share them through pkg/cache: the first creates an entry under
// an exclusive lock, in a private temporary directory renamed into place; each conversion holds
// a shared lock on the entries it uses until it ends, so a prune never takes them away. The
// roots keep their inner modes (set-id files, device nodes), faithfully: the cache directories
// above them are private (0700), so no other user reaches them.

// cacheRoot is the conversion's cache root.
func (r *run) cacheRoot() cache.Root { return cache.RootOrDefault(r.opts.CacheDir) }

// cachedRoot returns the cached tree named key, creating it with fill (given a fresh private
// directory) when absent. The entry stays in use until the conversion ends.
func (r *run) cachedRoot(ctx context.Context, key string, fill func(ctx context.Context, dir string) error) (string, error) {
	d, err := r.cacheRoot().Dir(cache.Roots, nil, r.opts.Notef)
	if err != nil {
		return "", err
	}
	dir, l, err := d.Get(ctx, key, fill)
	if err != nil {
		return "", err
	}
	r.cleanup = append(r.cleanup, func() error { l.Release(); return nil })
	return dir, nil
}

// copyTree copies a root with everything a root holds: owners, modes, hard links, xattrs,
// devices (GNU cp -a, reflinks where the filesystem has them).
func copyTree(ctx context.Context, from, to string) error {
	cmd := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", from+"/.", to+"/")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v: %s", from, err, strings.TrimSpace(string(out)))
	}
	return nil
}
