package filecopy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vm2image/vm2image/internal/ctxio"
)

// Option says how Copy may place the contents, or what dst must be.
type Option uint8

const (
	// Exclusive: dst must not exist (O_EXCL, so a symlink planted at dst is never followed);
	// without it dst is created, or truncated when it exists.
	Exclusive Option = 1 << iota
	// Reflink: share src's extents (FICLONE) where the filesystem can, so nothing is copied
	// until one side is written; else copy.
	Reflink
	// HardLink: make dst a hard link to src where possible (after Reflink, when both are
	// given). Only for a src nothing writes again: the two names are one file, with src's mode.
	HardLink
)

// Copy makes dst hold the regular file src's contents, with mode perm (a hard link keeps
// src's). ctx is checked between chunks of a copy. On error, a dst this call created is
// removed.
func Copy(ctx context.Context, src, dst string, perm os.FileMode, opts ...Option) error {
	var o Option
	for _, x := range opts {
		o |= x
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("copying %s: not a regular file", src)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if o&Exclusive != 0 {
		flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	}
	_, statErr := os.Lstat(dst)
	created := errors.Is(statErr, fs.ErrNotExist)
	out, err := os.OpenFile(dst, flags, perm)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if o&Reflink != 0 && unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return finish(out, perm, nil, created)
	}
	if o&HardLink != 0 {
		// dst is ours (just created, or given to be replaced): swap it for a link.
		out.Close()
		if err := os.Remove(dst); err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
		if os.Link(src, dst) == nil {
			return nil
		}
		if out, err = os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm); err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
		created = true
	}
	_, err = ctxio.Copy(ctx, out, in)
	return finish(out, perm, err, created)
}

// finish sets dst's mode (whatever the umask made of it) and closes it; on error it removes a
// dst the copy created.
func finish(out *os.File, perm os.FileMode, err error, created bool) error {
	err = errors.Join(err, out.Chmod(perm), out.Close())
	if err != nil {
		if created {
			os.Remove(out.Name())
		}
		return fmt.Errorf("copying to %s: %w", out.Name(), err)
	}
	return nil
}
