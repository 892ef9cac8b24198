package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Options configure reading a disk.
type Options struct {
	// Root names the root filesystem's device when the disk holds several systems: the
	// appliance's name (/dev/sda2, /dev/vg/root) or, on the trusted path, the partition number
	// (2) or "whole" for a filesystem on the whole disk.
	Root string
	// WorkDir is a private (0700) directory for an OVA's disk and raw copies; it must exist.
	WorkDir string
	// Env is the environment of the external tools (guestfish, qemu-img, mount); nil: ours.
	Env  []string
	Logf func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Image is a disk image ready to be read: its path (an OVA's disk is copied out into the work
// directory) and its checked format.
type Image struct {
	Path   string
	Format Format
	Size   int64
}

// Prepare opens file read-only, detects its format and checks it (Sniff); an OVA's first disk
// is copied into opts.WorkDir and checked in turn.
func Prepare(ctx context.Context, file string, opts Options) (Image, error) {
	file, err := filepath.Abs(file) // the tools run in other directories and namespaces
	if err != nil {
		return Image{}, err
	}
	f, err := os.Open(file)
	if err != nil {
		return Image{}, fmt.Errorf("opening disk image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Image{}, fmt.Errorf("reading disk image metadata: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Image{}, fmt.Errorf("%w: %s is not a regular file", ErrUnsupported, file)
	}
	format, err := Sniff(f, st.Size())
	if err != nil {
		return Image{}, fmt.Errorf("checking %s (%s): %w", file, format, err)
	}
	if format == Raw { // the appliance would take a garbage table too: refuse it here
		if _, err := Partitions(f, st.Size()); err != nil {
			return Image{}, fmt.Errorf("checking %s: %w", file, err)
		}
	}
	if format != OVA {
		return Image{Path: file, Format: format, Size: st.Size()}, nil
	}
	out, err := os.OpenFile(filepath.Join(opts.WorkDir, "ova-disk"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Image{}, fmt.Errorf("making the OVA's disk copy: %w", err)
	}
	defer out.Close()
	stop := context.AfterFunc(ctx, func() { f.Close() })
	name, err := ExtractOVA(f, out)
	stop()
	if err == nil {
		err = out.Close()
	}
	if err != nil {
		return Image{}, fmt.Errorf("reading OVA %s: %w", file, err)
	}
	opts.Logf("disk: OVA %s: using its disk %s", file, name)
	img, err := Prepare(ctx, out.Name(), opts)
	if err == nil && img.Format == OVA {
		err = fmt.Errorf("%w: an OVA inside an OVA", ErrUnsupported)
	}
	if err != nil {
		return Image{}, fmt.Errorf("disk %s of OVA %s: %w", name, file, err)
	}
	return img, nil
}

// safeMount and safeDevice are the mount points and device names taken from a guest's
// inspection: anything else (spaces, quotes, newlines, "..") is left out with a note.
var (
	safeMount  = regexp.MustCompile(`^/[A-Za-z0-9._/+-]*$`)
	safeDevice = regexp.MustCompile(`^/dev/[A-Za-z0-9._/+-]+$`)
)

// isSafeDevice: a device name of the guest's (fstab, inspection, LVM names) that is a plain
// path under /dev: no "..", no "//" (an LV or fstab entry crafted as /dev/vg/../../etc/x).
func isSafeDevice(dev string) bool {
	return safeDevice.MatchString(dev) && !strings.Contains(dev, "..") && !strings.Contains(dev, "//")
}

func isSafeMount(mp string) bool {
	return safeMount.MatchString(mp) && !strings.Contains(mp, "..") && !strings.Contains(mp, "//")
}

// Mount is one filesystem to mount under the root, from the guest's /etc/fstab.
type Mount struct {
	Point  string // absolute, "/" for the root
	Device string
}

// noOS explains why no root was found, from the filesystems seen: wrapping ErrEncrypted when
// one is LUKS, ErrUnknownFS when one is unreadable, and always ErrNoOS.
func noOS(fss map[string]string, order []string) error {
	var parts []string
	var also []error
	for _, dev := range order {
		switch t := fss[dev]; t {
		case "crypto_LUKS":
			parts = append(parts, dev+": encrypted (LUKS), not opened")
			also = append(also, ErrEncrypted)
		case "unknown", "":
			parts = append(parts, dev+": unknown filesystem")
			also = append(also, ErrUnknownFS)
		case "swap":
			parts = append(parts, dev+": swap, not read")
		case "LVM2_member":
			parts = append(parts, dev+": LVM physical volume (the appliance reads LVM; --trust-disk does not)")
			also = append(also, ErrUnsupported)
		default:
			parts = append(parts, dev+": "+t+" without /etc/os-release")
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no filesystem at all")
	}
	return &problem{msg: fmt.Sprintf("%v (%s)", ErrNoOS, strings.Join(parts, "; ")), errs: append(also, ErrNoOS)}
}

// problem is an error with one message that matches several sentinels with errors.Is.
type problem struct {
	msg  string
	errs []error
}

func (p *problem) Error() string   { return p.msg }
func (p *problem) Unwrap() []error { return p.errs }
