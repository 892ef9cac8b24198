package main

import (
	"os"

	"github.com/spf13/pflag"
	"github.com/vm2image/vm2image/pkg/source"
)

// diskFlags are the flags of disk: sources.
type diskFlags struct {
	root  string
	trust bool
}

func (d *diskFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&d.root, "disk-root", "", "disk: sources holding several systems: the root filesystem to read (/dev/sda2 as libguestfs names it; with --trust-disk the partition number)")
	fs.BoolVar(&d.trust, "trust-disk", false, "disk: sources: mount the image's filesystems with this host's kernel (read-only, noexec, nodev, nosuid) instead of libguestfs's appliance; faster, for images you trust only")
}

// options turns the flags into source options. libguestfs runs its appliance with qemu
// directly unless LIBGUESTFS_BACKEND says otherwise (no libvirt daemon needed).
func (d *diskFlags) options() source.DiskOptions {
	env := os.Environ()
	if os.Getenv("LIBGUESTFS_BACKEND") == "" {
		env = append(env, "LIBGUESTFS_BACKEND=direct")
	}
	return source.DiskOptions{Root: d.root, Trust: d.trust, Env: env}
}
