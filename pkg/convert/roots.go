package convert

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Unpacked roots are cached: the base image unpacked (keyed by its digest) and the base with a
// packages layer applied (keyed by both), so a conversion of a VM whose base and package set
// were seen before unpacks nothing. The cached trees are read-only: the builder mounts the base
// as an overlay's lower layer and the diff only reads. Concurrent conversions share them: the
// first creates an entry under a lock, in a temporary directory renamed into place.

// rootsDir is where unpacked roots are cached.
func (r *run) rootsDir() string {
	if d := os.Getenv("VM2IMAGE_ROOTS_CACHE"); d != "" {
		return d
	}
	if r.opts.CacheDir != "" {
		return filepath.Join(filepath.Dir(filepath.Clean(r.opts.CacheDir)), "roots")
	}
	return "/var/cache/vm2image/roots"
}

// cachedRoot returns the cached tree named key, creating it with fill (given a fresh directory)
// when absent.
func (r *run) cachedRoot(ctx context.Context, key string, fill func(ctx context.Context, dir string) error) (string, error) {
	dir := r.rootsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(dir, key)
	lock, err := os.OpenFile(final+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", final, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	marker := final + ".complete" // beside the tree, not in it: the diff walks the tree
	if _, err := os.Stat(marker); err == nil {
		return final, nil
	}
	os.RemoveAll(final)
	tmp, err := os.MkdirTemp(dir, key+".tmp-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := fill(ctx, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return "", err
	}
	return final, nil
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
