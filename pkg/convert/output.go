package convert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/services"
)

// Version is the converter's version, written in the labels.
var Version = "0.1.0-dev"

func (r *run) imageConfig() image.ConfigSpec {
	excl, _ := json.Marshal(r.excludes())
	cfg := image.ConfigSpec{
		Env:        []string{"PATH=" + services.DefaultPath},
		WorkingDir: "/",
		Entrypoint: []string{services.InitPath},
		StopSignal: "SIGTERM",
		Created:    r.opts.Created,
		Labels: map[string]string{
			image.LabelSource: r.opts.Source, image.LabelHost: r.info.Hostname, image.LabelOS: r.report.OS,
			image.LabelAgentVersion: r.info.AgentVersion, image.LabelCreated: r.opts.Created.Format("2006-01-02T15:04:05Z"),
			image.LabelStrategy: string(r.opts.Strategy), image.LabelExcludes: string(excl), image.LabelVersion: Version,
		},
	}
	for _, p := range r.services.PublishedPorts() {
		cfg.ExposedPorts = append(cfg.ExposedPorts, fmt.Sprintf("%d/%s", p.Port, p.Proto))
	}
	return cfg
}

// tag is the image's name: the one given, else vm2image/HOSTNAME:latest.
func (r *run) tag() string {
	if r.opts.Tag != "" {
		return r.opts.Tag
	}
	host := strings.ToLower(r.info.Hostname)
	host = regexp.MustCompile(`[^a-z0-9._-]+`).ReplaceAllString(host, "-")
	host = strings.Trim(host, ".-_")
	if host == "" {
		host = "vm"
	}
	return "vm2image/" + host + ":latest"
}

func (r *run) assembleAndWrite(ctx context.Context) error {
	if r.precompressed != nil {
		select {
		case <-r.precompressed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	img, err := image.Assemble(ctx, r.base.Image, r.layers, r.imageConfig(), image.AssembleOptions{
		Compression: r.opts.Compression, WorkDir: filepath.Join(r.work, "blobs"),
		Store: r.cacheRoot().Path(cache.Images), // held since resolveBase
	})
	if err != nil {
		return fmt.Errorf("assembling the image: %w", err)
	}
	if r.opts.Format == FormatOCI {
		// The layout holds OCI media types: describe, load and push that image, so the
		// report's digest is the one the layout's index names.
		if img, err = image.ToOCI(img); err != nil {
			return fmt.Errorf("converting the image to OCI media types: %w", err)
		}
	}
	if err := r.describe(img); err != nil {
		return err
	}
	tag := r.tag()
	ir := &r.report.Image
	ir.Tag, ir.Format = tag, string(r.opts.Format)
	if r.opts.Output != "" {
		if err := r.writeOutput(ctx, img, tag); err != nil {
			return err
		}
	}
	if r.opts.Load {
		engine, err := image.NewEngine(ctx)
		if err != nil {
			return err
		}
		skipped, err := image.LoadNew(ctx, img, tag, engine, r.loadOptions(img, tag))
		if err != nil {
			return fmt.Errorf("loading into the Docker engine: %w", err)
		}
		ir.Loaded, ir.LoadSkippedLayers = true, skipped
	}
	if r.opts.Push != "" {
		res, err := image.Push(ctx, r.opts.Push, img, image.PushOptions{Insecure: r.opts.Insecure, MountFrom: r.mountFrom()})
		if err != nil {
			return fmt.Errorf("pushing to %s: %w", r.opts.Push, err)
		}
		ir.Pushed, ir.Push = r.opts.Push, &res
	}
	r.pushToRegCache(ctx, img, r.opts.Push)
	return nil
}

// loadOptions names the engine images that may hold the image's base and packages layers: the
// base itself, the image loaded before under the same tag, and a pin tag per base+packages
// chain, set on every load, that keeps those layers in the engine for the next conversion.
func (r *run) loadOptions(img v1.Image, tag string) image.LoadOptions {
	o := image.LoadOptions{Known: []string{tag}}
	if r.base.Transport == image.TransportDaemon {
		o.Known = append(o.Known, r.base.Ref)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return o
	}
	shared := len(cfg.RootFS.DiffIDs) - len(r.roles)
	if len(r.roles) > 0 && r.roles[0] == "packages" {
		shared++
	}
	if shared <= 0 || shared > len(cfg.RootFS.DiffIDs) {
		return o
	}
	h := sha256.New()
	for _, d := range cfg.RootFS.DiffIDs[:shared] {
		fmt.Fprintln(h, d)
	}
	o.Pin = "vm2image-cache/layers:" + hex.EncodeToString(h.Sum(nil))[:16]
	o.Known = append(o.Known, o.Pin)
	return o
}

// describe fills the report's image figures.
func (r *run) describe(img v1.Image) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	ir := &r.report.Image
	ir.Digest = d.String()
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	ir.ID = id.String()
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	ir.Bytes = m.Config.Size
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	nBase := len(layers) - len(r.roles)
	for i, l := range layers {
		role := "base"
		if i >= nBase {
			role = r.roles[i-nBase]
		}
		ls := LayerSizes{Role: role, Source: r.layerSource(i < nBase, l)}
		dg, _ := l.Digest()
		di, _ := l.DiffID()
		ls.Digest, ls.DiffID = dg.String(), di.String()
		if ls.Compressed, err = l.Size(); err != nil {
			return err
		}
		ir.Bytes += ls.Compressed
		ir.Layers = append(ir.Layers, ls)
	}
	return nil
}

// layoutTag is the name an OCI layout knows the image by: the tag of name:tag ("latest"), as
// skopeo's oci:DIR:TAG and umoci's DIR:TAG expect.
func layoutTag(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "latest"
}

// Errors about the output paths, checked before any work.
var (
	// ErrOutputExists: -o (or its FILE.context/) exists and Force is off.
	ErrOutputExists = errors.New("output exists")
	// ErrOutputBusy: another conversion holds the lock of the same -o.
	ErrOutputBusy = errors.New("output in use by another conversion")
)

// prepareOutput checks -o before any work: its directory exists and is writable, it and its
// FILE.context/ are absent (or Force), and no other conversion writes it: the lock taken here is
// held until the conversion ends.
func (r *run) prepareOutput() error {
	out := r.opts.Output
	if out == "" {
		return nil
	}
	dir := filepath.Dir(out)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("checking -o %s: directory %s does not exist", out, dir)
	case err != nil:
		return fmt.Errorf("checking -o %s: %w", out, err)
	case !fi.IsDir():
		return fmt.Errorf("checking -o %s: %s is not a directory", out, dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("checking -o %s: directory %s is not writable: %w", out, dir, err)
	}
	unlock, err := lockOutput(out)
	if err != nil {
		return err
	}
	r.cleanup = append(r.cleanup, unlock)
	return r.checkReplace()
}

// checkReplace refuses to replace an existing -o or FILE.context/ without Force, and what
// Force cannot replace: a directory for a docker-archive, a file for an OCI layout.
func (r *run) checkReplace() error {
	out := r.opts.Output
	paths := []string{out}
	if !r.opts.NoContext {
		paths = append(paths, contextDir(out))
	}
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking %s: %w", p, err)
		}
		if !r.opts.Force {
			return fmt.Errorf("%w: %s (give --force to replace it)", ErrOutputExists, p)
		}
		wantDir := p != out || r.opts.Format == FormatOCI
		if fi.IsDir() != wantDir {
			return fmt.Errorf("%w: %s is a %s, --force does not replace it", ErrOutputExists, p, kindOf(fi))
		}
	}
	return nil
}

func kindOf(fi fs.FileInfo) string {
	if fi.IsDir() {
		return "directory"
	}
	return "file (" + fi.Mode().Type().String() + ")"
}

// contextDir is where the Dockerfile and its build context go beside -o.
func contextDir(out string) string { return out + ".context" }

// lockOutput takes an exclusive lock on -o through a hidden lock file beside it, and returns
// the function that removes the file and lets the lock go. A second conversion to the same -o
// fails at once with ErrOutputBusy.
func lockOutput(out string) (func() error, error) {
	lockPath := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".vm2image-lock")
	for {
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("locking -o %s: %w", out, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w: another vm2image is writing %s (lock %s)", ErrOutputBusy, out, lockPath)
			}
			return nil, fmt.Errorf("locking -o %s: %w", out, err)
		}
		// The holder before us removes the file before it lets go: a lock on a file no longer
		// at lockPath protects nothing, so take the one that is there.
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(lockPath, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return func() error {
				err := os.Remove(lockPath)
				f.Close()
				return err
			}, nil
		}
		f.Close()
	}
}

// writeOutput writes FILE.context/ and then the image at -o; when the image cannot be
// written, the context files this run created are removed again (and only those).
func (r *run) writeOutput(ctx context.Context, img v1.Image, tag string) error {
	out := r.opts.Output
	ir := &r.report.Image
	var cw *contextWriter
	if !r.opts.NoContext {
		cw = &contextWriter{dir: contextDir(out)}
		if err := r.writeContext(ctx, cw, tag); err != nil {
			cw.rollback()
			return fmt.Errorf("writing %s: %w", cw.dir, err)
		}
		ir.ContextFiles = cw.written
	}
	var err error
	if r.opts.Format == FormatOCI {
		err = image.WriteOCILayout(ctx, out, img, layoutTag(tag))
	} else {
		err = image.WriteDockerArchive(ctx, out, img, tag)
	}
	if err != nil {
		if cw != nil {
			cw.rollback()
		}
		ir.ContextFiles = nil
		return fmt.Errorf("writing %s: %w", out, err)
	}
	ir.Output = out
	return nil
}
