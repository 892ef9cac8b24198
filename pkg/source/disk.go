package source

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vm2image/vm2image/internal/workdir"
	"github.com/vm2image/vm2image/pkg/disk"
)

// DiskOptions configure a disk: source.
type DiskOptions struct {
	// Root chooses the root filesystem when the disk holds several systems.
	Root string
	// Trust mounts the image's filesystems with the host kernel (faster; for images the
	// operator trusts). Without it they are read by libguestfs's appliance.
	Trust bool
	// Env is the environment of guestfish, qemu-img and mount (LIBGUESTFS_BACKEND and such).
	Env []string
}

// OpenDisk opens a disk image (qcow2, VMDK, VHD, VHDX, raw or OVA) as a source. The image is
// only ever read. By default libguestfs's appliance reads its filesystems and streams them as
// a tar into a private directory under opts.WorkDir (as tar: does); with opts.Disk.Trust the
// host mounts them read-only in a private mount namespace and GNU tar streams them there.
func OpenDisk(ctx context.Context, file, name string, opts Options) (Source, error) {
	td, err := workdir.New(opts.WorkDir, "vm2image-disk-")
	if err != nil {
		return nil, fmt.Errorf("opening source %s: %w", name, err)
	}
	abs, err := filepath.Abs(td.Path())
	if err != nil {
		td.Remove()
		return nil, err
	}
	dopts := disk.Options{Root: opts.Disk.Root, WorkDir: abs, Env: opts.Disk.Env, Logf: opts.Logf}
	src, err := openDisk(ctx, file, name, opts, dopts)
	if err != nil {
		td.Remove()
		return nil, fmt.Errorf("opening source %s: %w", name, err)
	}
	prev := src.cleanup
	src.cleanup = func() error {
		var err error
		if prev != nil {
			err = prev()
		}
		if rerr := td.Remove(); err == nil {
			err = rerr
		}
		return err
	}
	return src, nil
}

func openDisk(ctx context.Context, file, name string, opts Options, dopts disk.Options) (*local, error) {
	img, err := disk.Prepare(ctx, file, dopts)
	if err != nil {
		return nil, err
	}
	produce := func(w io.Writer) error { return disk.Appliance(ctx, img, dopts, w) }
	if opts.Disk.Trust {
		m, err := disk.Trusted(ctx, img, dopts)
		if err != nil {
			return nil, err
		}
		defer m.Close()
		produce = func(w io.Writer) error { return m.WriteTar(ctx, w, dopts) }
	}
	root := filepath.Join(dopts.WorkDir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	read := make(chan error, 1)
	go func() {
		err := Unpack(ctx, pr, root, opts.Logf)
		if err == nil { // tar pads its archive past the end marker: take it all
			_, err = io.Copy(io.Discard, pr)
		}
		pr.CloseWithError(err)
		read <- err
	}()
	err = produce(pw)
	pw.CloseWithError(err)
	if rerr := <-read; err == nil && rerr != nil {
		err = fmt.Errorf("unpacking the disk's files: %w", rerr)
	}
	if err != nil {
		return nil, err
	}
	src, err := OpenDir(root, name)
	if err != nil {
		return nil, err
	}
	return src.(*local), nil
}
