package disk

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxFstab bounds the guest's /etc/fstab read.
const maxFstab = 1 << 20

// mountRoot mounts every readable volume to find the one holding /etc/os-release, then the
// filesystems its /etc/fstab names at their places under it.
func (m *Mounted) mountRoot(ctx context.Context, raw string, vols []volume, opts Options) error {
	fss, order := map[string]string{}, []string(nil)
	var roots []int
	for i := range vols {
		v := &vols[i]
		fss[v.name()], order = v.fsType, append(order, v.name())
		if _, ok := trustedTypes[v.fsType]; !ok {
			continue
		}
		v.dir = filepath.Join(opts.WorkDir, "mnt", "v"+strconv.Itoa(v.Number))
		if err := os.MkdirAll(v.dir, 0o700); err != nil {
			return err
		}
		if err := m.mount(ctx, raw, *v, v.dir, opts); err != nil {
			return err
		}
		for _, rel := range []string{"etc/os-release", "usr/lib/os-release"} {
			if _, err := os.Lstat(filepath.Join(m.inNS(v.dir), rel)); err == nil {
				roots = append(roots, i)
				break
			}
		}
	}
	root, err := pickRoot(vols, roots, opts.Root, fss, order)
	if err != nil {
		return err
	}
	opts.Logf("disk: root filesystem on %s (%s)", root.name(), root.fsType)
	m.root = root.dir
	return m.mountFstab(ctx, raw, vols, root, opts)
}

// pickRoot chooses among the volumes holding an os-release.
func pickRoot(vols []volume, roots []int, want string, fss map[string]string, order []string) (volume, error) {
	var names []string
	for _, i := range roots {
		names = append(names, vols[i].name())
		if want != "" && (want == strconv.Itoa(vols[i].Number) || want == "whole" && vols[i].Number == 0) {
			return vols[i], nil
		}
	}
	switch {
	case want != "":
		return volume{}, fmt.Errorf("%w: --disk-root %s is not one of the systems found (%s)", ErrNoOS, want, strings.Join(names, ", "))
	case len(roots) == 1:
		return vols[roots[0]], nil
	case len(roots) > 1:
		return volume{}, fmt.Errorf("%w: %s (give the partition number)", ErrSeveralRoots, strings.Join(names, ", "))
	}
	return volume{}, noOS(fss, order)
}

// mountFstab mounts the root's fstab entries (other than "/") at their places.
func (m *Mounted) mountFstab(ctx context.Context, raw string, vols []volume, root volume, opts Options) error {
	r, err := os.OpenRoot(m.inNS(m.root))
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := r.Open("etc/fstab")
	if err != nil {
		opts.Logf("disk: no /etc/fstab on the root: reading the root filesystem alone")
		return nil
	}
	b, err := readBounded(f, maxFstab)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading the guest's /etc/fstab: %w", err)
	}
	for _, e := range ParseFstab(b) {
		if e.Point == "/" {
			continue
		}
		v, ok := findVolume(vols, e.Spec)
		if _, known := trustedTypes[v.fsType]; !ok || !known {
			opts.Logf("disk: fstab %s on %s: no readable volume for it, left out", e.Point, e.Spec)
			continue
		}
		if v.Number == root.Number {
			continue
		}
		if err := realDir(r, e.Point); err != nil {
			opts.Logf("disk: fstab %s: %v, left out", e.Point, err)
			continue
		}
		opts.Logf("disk: mounting %s (%s) at %s", v.name(), v.fsType, e.Point)
		if err := m.mount(ctx, raw, v, filepath.Join(root.dir, e.Point), opts); err != nil {
			return err
		}
	}
	return nil
}

// findVolume maps an fstab spec (UUID=, LABEL=, /dev/disk/by-uuid/, /dev/sdXN) to a volume.
func findVolume(vols []volume, spec string) (volume, bool) {
	for _, v := range vols {
		switch {
		case v.uuid != "" && (spec == "UUID="+v.uuid || spec == "/dev/disk/by-uuid/"+v.uuid):
			return v, true
		case v.label != "" && (spec == "LABEL="+v.label || spec == "/dev/disk/by-label/"+v.label):
			return v, true
		case v.Number > 0 && strings.HasPrefix(spec, "/dev/") && devNumber(spec) == v.Number:
			return v, true
		}
	}
	return volume{}, false
}

// devNumber is the partition number of /dev/sda2, /dev/vda2, /dev/xvda2, /dev/nvme0n1p2.
func devNumber(dev string) int {
	base := filepath.Base(dev)
	i := len(base)
	for i > 0 && base[i-1] >= '0' && base[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(base[i:])
	if err != nil || i == 0 {
		return -1
	}
	return n
}

// realDir checks that every component of point is a directory inside the root, no symlink:
// a mount never lands outside the root.
func realDir(r *os.Root, point string) error {
	p := ""
	for _, c := range strings.Split(strings.Trim(point, "/"), "/") {
		p = filepath.Join(p, c)
		st, err := r.Lstat(p)
		if err != nil {
			return err
		}
		if st.Mode().Type() != fs.ModeDir {
			return fmt.Errorf("/%s is not a directory", p)
		}
	}
	return nil
}
