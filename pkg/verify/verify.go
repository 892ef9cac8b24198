package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/source"
)

// RuntimeDir is what the image's runtime layer adds (the init and services.yaml): it is not part
// of the VM, so it is always excluded.
const RuntimeDir = "/.vm2image"

// Options control Image.
type Options struct {
	// Excludes are anchored globs (as convert takes them) added to those the conversion used,
	// which the image's org.vm2image.excludes label holds (image.DefaultExcludes when it has
	// none), and to RuntimeDir.
	Excludes []string
	// KeepSELinux compares security.selinux labels too; by default they are dropped, as the
	// conversion drops them.
	KeepSELinux bool
	// NoPackages skips the comparison of the installed packages.
	NoPackages bool
	// MaxDiffs bounds the differences kept in Report.Differences (0: all). Counts count all.
	MaxDiffs int
	// Progress, when set, hears the bytes read and hashed so far (the image's layer blobs as
	// they are read, the VM's files as the source hashes them) and their total (-1 until
	// known: the image's manifest and a walk of the VM's metadata give it before contents are
	// read). It is called from several goroutines.
	Progress func(done, total int64)
}

// Kind names a kind of difference.
type Kind string

// Kinds of differences. "VM" is the source, "image" the flattened image.
const (
	KindMissing        Kind = "missing"  // in the VM, not in the image
	KindExtra          Kind = "extra"    // in the image, not in the VM
	KindType           Kind = "type"     // file, dir, symlink, device, fifo
	KindMode           Kind = "mode"     // permission, set-id and sticky bits (not of symlinks)
	KindOwner          Kind = "owner"    // numeric uid:gid
	KindSize           Kind = "size"     // regular files
	KindContent        Kind = "content"  // same size, another sha256
	KindTarget         Kind = "target"   // symlink target
	KindHardlink       Kind = "hardlink" // linked to another name on one side only
	KindDevice         Kind = "device"   // major, minor
	KindXattr          Kind = "xattr"    // extended attributes
	KindPackageMissing Kind = "package-missing"
	KindPackageExtra   Kind = "package-extra"
	KindPackageVersion Kind = "package-version"
	KindPort           Kind = "port"    // --run: a port the VM listened on does not accept connections
	KindHTTP           Kind = "http"    // --run: GET / answers otherwise than on the VM
	KindStopped        Kind = "stopped" // --run: the container did not stay up
)

// Difference is one difference between the VM and the image. Path is a path relative to the
// root for files, "NAME:ARCH" for packages, "PROTO/PORT" for ports. VM and Image are short
// human values ("" when absent).
type Difference struct {
	Kind  Kind   `json:"kind"`
	Path  string `json:"path"`
	VM    string `json:"vm,omitempty"`
	Image string `json:"image,omitempty"`
}

// Report is the outcome of a verification.
type Report struct {
	Equal  bool         `json:"equal"`
	Counts map[Kind]int `json:"counts"`
	// Differences are sorted: files in walk order, then packages by name, then ports. A
	// directory missing on one side is one difference; its contents are counted in its value.
	Differences  []Difference `json:"differences"`
	Truncated    bool         `json:"truncated,omitempty"` // MaxDiffs left some out
	VMEntries    int64        `json:"vm_entries"`
	ImageEntries int64        `json:"image_entries"`
	Packages     struct {
		VM    int `json:"vm"`
		Image int `json:"image"`
	} `json:"packages"`
	Excludes []string   `json:"excludes"`
	Notes    []string   `json:"notes,omitempty"`
	Run      *RunReport `json:"run,omitempty"`
	Seconds  float64    `json:"seconds"`

	max int
}

func newReport(max int) *Report {
	return &Report{Equal: true, Counts: map[Kind]int{}, Differences: []Difference{}, max: max}
}

// add records d.
func (r *Report) add(d Difference) {
	r.Equal = false
	r.Counts[d.Kind]++
	if r.max > 0 && len(r.Differences) >= r.max {
		r.Truncated = true
		return
	}
	r.Differences = append(r.Differences, d)
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// AddRun records the outcome of Run in r.
func (r *Report) AddRun(rr *RunReport) {
	r.Run = rr
	for _, d := range rr.Differences {
		r.add(d)
	}
}

// Image compares the image img with the source src: the flattened image's entries (as the
// layers stack up, whiteouts and opaque directories applied) with the source's tree, contents
// by sha256 digests the source computes itself, and the installed packages of both. The VM's
// tree is walked while the image is flattened; neither is held in memory beyond metadata.
//
// Not compared, by design: modification times (the checksum strategy keeps the base's mtime
// when only the mtime differs), the root directory and the contents of the VM's mount points
// (dev, proc, sys and run, and any other listed directory whose filesystem was not walked:
// their existence and type are), sockets (tar cannot hold them), and symlinks' permission bits.
func Image(ctx context.Context, img v1.Image, src source.Source, opts Options) (*Report, error) {
	return compare(ctx, v1Image{img}, src, opts)
}

func compare(ctx context.Context, img imageSource, src source.Source, opts Options) (*Report, error) {
	start := time.Now()
	r := newReport(opts.MaxDiffs)
	labels, err := img.labels()
	if err != nil {
		return nil, err
	}
	if r.Excludes, err = excludes(labels, opts, r); err != nil {
		return nil, err
	}
	c, err := newComparison(src, r.Excludes, opts, r)
	if err != nil {
		return nil, err
	}
	defer c.close()
	c.count.setTotal(ctx, img, src, r.Excludes)
	if err := c.run(ctx, img); err != nil {
		return nil, err
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// excludes returns the excludes to compare under: the conversion's, opts', RuntimeDir.
func excludes(labels map[string]string, opts Options, r *Report) ([]string, error) {
	var excl []string
	if s, ok := labels[image.LabelExcludes]; ok {
		if err := json.Unmarshal([]byte(s), &excl); err != nil {
			return nil, fmt.Errorf("reading label %s: %w", image.LabelExcludes, err)
		}
	} else {
		excl = append(excl, image.DefaultExcludes...)
		r.note("the image has no %s label: comparing under the default excludes", image.LabelExcludes)
	}
	excl = append(excl, opts.Excludes...)
	return append(excl, RuntimeDir), nil
}
