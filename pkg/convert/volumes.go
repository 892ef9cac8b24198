package convert

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vm2image/vm2image/pkg/fit"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/wire"
)

// PhaseVolumes assesses the VM's fit and moves its data directories into volume archives.
const PhaseVolumes = "volumes"

// ErrNotDirectory: a --volume path that is not a directory in the VM.
var ErrNotDirectory = errors.New("a volume must be a directory of the VM")

// VolumesAuto is the --volumes value that takes the data directories fit finds.
const VolumesAuto = "auto"

// Volume is a VM directory whose contents left the image for a named volume's initial content.
type Volume struct {
	Path    string `json:"path"`    // in the VM, where the container mounts it
	Name    string `json:"name"`    // the named volume compose.yaml mounts
	Archive string `json:"archive"` // the tar archive of its contents (paths relative to Path)
	Entries int    `json:"entries"`
	Bytes   int64  `json:"bytes"` // of regular files
}

// CheckVolumes cleans Options.Volumes: absolute VM paths, not the root, no pseudo filesystems.
func (o *Options) CheckVolumes() error {
	if len(o.Volumes) == 0 && !o.VolumesAuto {
		return nil
	}
	if o.Output == "" {
		return optionError("--volume and --volumes need -o: the volume archives are written beside it")
	}
	for i, v := range o.Volumes {
		c := path.Clean(v)
		if !path.IsAbs(v) || c == "/" || strings.Contains(v, "\x00") {
			return optionError(fmt.Sprintf("--volume %q: want an absolute directory of the VM other than /", v))
		}
		for _, pseudo := range []string{"/proc", "/sys", "/dev", "/run"} {
			if c == pseudo || strings.HasPrefix(c, pseudo+"/") {
				return optionError(fmt.Sprintf("--volume %q: %s is not the VM's data", v, pseudo))
			}
		}
		o.Volumes[i] = c
	}
	return nil
}

// volumes assesses the VM's fit (a section of the report) and, with volumes asked for, writes
// each one's contents into an archive beside -o and leaves them out of the VM diff.
func (r *run) volumes(ctx context.Context) error {
	quiet := r.opts
	quiet.Logf, quiet.Warnf, quiet.Notef = func(string, ...any) {}, func(string, ...any) {}, func(string, ...any) {}
	cfg, _ := (&run{opts: quiet, src: r.src, procs: r.procs, report: &Report{}}).selectServices(ctx)
	rep, err := fit.Analyze(ctx, r.src, fit.Input{Services: cfg, Processes: listening(r.procs), Hostname: r.info.Hostname, Excludes: r.excludes()})
	if err != nil && len(r.opts.Volumes) == 0 && !r.opts.VolumesAuto {
		r.opts.Warnf("warning: no fit assessment in the report: %v", err)
		return nil // the assessment informs; without volumes asked for it decides nothing
	}
	if err != nil {
		return fmt.Errorf("assessing the VM's data directories: %w", err)
	}
	r.report.Fit = rep
	paths := r.opts.Volumes
	if r.opts.VolumesAuto {
		paths = appendNew(paths, rep.DataDirs()...)
	}
	var hide []volumeDir
	for _, p := range paths {
		v, dir, err := r.extractVolume(ctx, p)
		if err != nil {
			return fmt.Errorf("moving %s into a volume: %w", p, err)
		}
		r.cleanup = append(r.cleanup, func() error { // a failed conversion leaves no archive
			if r.report.FailedPhase != "" {
				return os.Remove(v.Archive)
			}
			return nil
		})
		r.report.Volumes = append(r.report.Volumes, v)
		r.opts.Excludes = append(r.opts.Excludes, p)
		hide = append(hide, dir)
		r.opts.Logf("volume %s: %s (%d entries) in %s", v.Name, p, v.Entries, v.Archive)
	}
	if len(hide) == 0 {
		return nil
	}
	lp := filepath.Join(r.work, "volumes.layer.tar")
	if err := writeMountPoints(lp, hide); err != nil {
		return fmt.Errorf("writing the volumes' mount points: %w", err)
	}
	r.layers = append(r.layers, image.LayerFile{Path: lp, Comment: "vm2image: volume mount points (their contents are in volumes)"})
	r.roles = append(r.roles, "volumes")
	return nil
}

func appendNew(s []string, vs ...string) []string {
	for _, v := range vs {
		if !contains(s, v) {
			s = append(s, v)
		}
	}
	return s
}

// VolumeName is the named volume of a VM directory for an image: "web-var-lib-postgresql".
func VolumeName(tag, dir string) string {
	repo := tag
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	name := path.Base(repo) + strings.ReplaceAll(dir, "/", "-")
	name = strings.Map(func(c rune) rune {
		if c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return c
		}
		return '_'
	}, name)
	if c := name[0]; c == '-' || c == '_' || c == '.' { // Docker's names start with a letter or digit
		name = "v" + name
	}
	return name
}

// VolumeArchive is where the archive of a volume is written: beside -o.
func VolumeArchive(output, name string) string {
	return filepath.Join(filepath.Dir(output), filepath.Base(output)+".volume-"+name+".tar")
}

// volumeDir is a volume's directory as the VM has it (owner and mode), the mount point the
// image keeps, empty.
type volumeDir struct {
	path     string
	uid, gid int
	mode     int64
	mtime    time.Time
}

// extractVolume streams the VM directory p into its archive (atomically), paths made relative to
// p, owners, modes and extended attributes kept as the source gives them.
func (r *run) extractVolume(ctx context.Context, p string) (Volume, volumeDir, error) {
	v := Volume{Path: p, Name: VolumeName(r.tag(), p)}
	v.Archive = VolumeArchive(r.opts.Output, v.Name)
	dir := volumeDir{path: p, mode: 0o755}
	if _, err := os.Lstat(v.Archive); err == nil && !r.opts.Force {
		return v, dir, fmt.Errorf("%s exists (--force replaces it)", v.Archive)
	}
	ts, err := r.src.Files(ctx, wire.TreeArgs{Paths: []string{strings.TrimPrefix(p, "/")}, Recursive: true})
	if err != nil {
		return v, dir, err
	}
	defer ts.Close()
	tmp, err := os.CreateTemp(filepath.Dir(v.Archive), "."+filepath.Base(v.Archive)+".tmp-")
	if err != nil {
		return v, dir, err
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing
	bw := bufio.NewWriterSize(tmp, 1<<20)
	err = relocate(ts, bw, strings.TrimPrefix(p, "/"), &v, &dir)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && v.Entries == 0 {
		err = fmt.Errorf("%s is not in the VM", p)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), v.Archive)
	}
	return v, dir, err
}

// relocate copies the tar of prefix's tree from in to out with names relative to prefix ("./" for
// prefix itself), hard links too.
func relocate(in io.Reader, out io.Writer, prefix string, v *Volume, dir *volumeDir) error {
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	rel := func(name string) (string, bool) {
		name = strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
		if name == prefix {
			return ".", true
		}
		rest, ok := strings.CutPrefix(name, prefix+"/")
		return "./" + rest, ok
	}
	safe := func(name string) bool { // no ".." element, nothing absolute: the names stay inside
		return !slices.Contains(strings.Split(name, "/"), "..")
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		name, ok := rel(h.Name)
		if !ok {
			continue // a parent directory the stream carries
		}
		if !safe(name) || h.Typeflag == tar.TypeLink && !safe(h.Linkname) {
			return fmt.Errorf("%q: a name that leaves the volume", h.Name)
		}
		if name == "." && h.Typeflag != tar.TypeDir {
			if h.Typeflag == tar.TypeSymlink {
				return fmt.Errorf("%w: /%s is a symlink to %s (give --volume with the directory itself)", ErrNotDirectory, prefix, h.Linkname)
			}
			return fmt.Errorf("%w: /%s", ErrNotDirectory, prefix)
		}
		if name == "." {
			dir.uid, dir.gid, dir.mode, dir.mtime = h.Uid, h.Gid, h.Mode, h.ModTime
			name = "./"
		}
		if h.Typeflag == tar.TypeDir && name != "./" {
			name += "/"
		}
		h.Name = name
		if h.Typeflag == tar.TypeLink {
			if h.Linkname, ok = rel(h.Linkname); !ok {
				return fmt.Errorf("%s: a hard link out of the volume", h.Name)
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
		v.Entries++
		if h.Typeflag == tar.TypeReg {
			v.Bytes += h.Size
		}
	}
}

// writeMountPoints writes the layer that keeps each volume's directory, empty and opaque (so
// what the packages layer put there is hidden), with the VM's owner and mode.
func writeMountPoints(p string, dirs []volumeDir) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, d := range dirs {
		name := strings.TrimPrefix(d.path, "/")
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: d.mode, Uid: d.uid, Gid: d.gid, ModTime: d.mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name + "/.wh..wh..opq", Mode: 0o600, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// composeVolumes are the named volumes compose.yaml mounts.
func (r *run) composeVolumes() []services.VolumeMount {
	var out []services.VolumeMount
	for _, v := range r.report.Volumes {
		out = append(out, services.VolumeMount{Name: v.Name, Path: v.Path})
	}
	return out
}

// listening are the processes with listening sockets.
func listening(ps []procs.Process) []procs.Process {
	var out []procs.Process
	for _, p := range ps {
		if len(p.Listening) > 0 {
			out = append(out, p)
		}
	}
	return out
}
