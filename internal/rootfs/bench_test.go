package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadFile reads a small file through a relative and an absolute symlink: the plain
// host read of the old code (baseline, which would follow links out of the root), openat2, and
// the user-space resolver of old kernels.
func BenchmarkReadFile(b *testing.B) {
	root := b.TempDir()
	must(b, os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755))
	must(b, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(b, os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=debian\nVERSION_ID=12\n"), 0o644))
	must(b, os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")))
	must(b, os.Symlink("/etc/os-release", filepath.Join(root, "etc/abs")))
	name := "etc/abs"
	b.Run("os.ReadFile", func(b *testing.B) {
		host := filepath.Join(root, "etc/os-release") // an absolute link would leave the root
		for b.Loop() {
			if _, err := os.ReadFile(host); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, us := range []bool{false, true} {
		r, err := open(root, us)
		must(b, err)
		mode := "openat2"
		if r.userspace {
			mode = "userspace"
		}
		if us != r.userspace {
			r.Close()
			continue
		}
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				if _, err := r.ReadFile(name, ConfigLimit); err != nil {
					b.Fatal(err)
				}
			}
		})
		r.Close()
	}
}
