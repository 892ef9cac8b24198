package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vm2image/vm2image/internal/units"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// archiveRef is the reference a docker-archive records for img: tag, or no tag at all (the
// image's digest) when tag is empty.
func archiveRef(img v1.Image, tag string) (name.Reference, error) {
	if tag != "" {
		t, err := name.NewTag(tag)
		if err != nil {
			return nil, fmt.Errorf("parsing tag: %w", err)
		}
		return t, nil
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	return name.NewDigest("vm2image@" + d.String())
}

// WriteDockerArchive writes img, tagged tag, as a docker-archive that `docker load` reads. The
// file is written beside path and renamed onto it when complete and synced: on any error,
// a full disk included, path is left as it was and no temporary file remains.
func WriteDockerArchive(ctx context.Context, path string, img v1.Image, tag string) error {
	ref, err := archiveRef(img, tag)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing docker archive %s: %w", path, err)
	}
	if err := writeArchiveFile(ctx, f, ref, img); err != nil {
		f.Close()
		os.Remove(f.Name())
		return outputError("writing docker archive "+path, dir, img, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing docker archive %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// writeArchiveFile writes img to f, syncs and closes it.
func writeArchiveFile(ctx context.Context, f *os.File, ref name.Reference, img v1.Image) error {
	bw := bufio.NewWriterSize(ctxWriter{ctx: ctx, w: f}, 1<<20)
	if err := tarball.Write(ref, img, bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	return f.Close()
}

// WriteOCILayout writes img, tagged tag (annotation org.opencontainers.image.ref.name), as an
// OCI image layout at dir, converting Docker media types to OCI ones. The layout is written to a
// sibling DIR.tmp-XXXX and renamed onto dir when complete; an existing layout at dir is swapped
// out atomically and removed. An existing dir that is not a layout is left alone: an error.
func WriteOCILayout(ctx context.Context, dir string, img v1.Image, tag string) error {
	dir = filepath.Clean(dir)
	if err := checkReplaceable(dir); err != nil {
		return err
	}
	ociImg, err := toOCI(img)
	if err != nil {
		return fmt.Errorf("converting image to OCI: %w", err)
	}
	parent := filepath.Dir(dir)
	tmp, err := os.MkdirTemp(parent, filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	if err := writeLayout(ctx, tmp, ociImg, tag); err != nil {
		os.RemoveAll(tmp)
		return outputError("writing OCI layout "+dir, parent, img, err)
	}
	if err := replaceDir(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	syncDir(parent)
	return nil
}

func writeLayout(ctx context.Context, dir string, img v1.Image, tag string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{refNameAnnotation: tag}))
	}
	if err := p.AppendImage(ctxImage{ctx: ctx, Image: img}, opts...); err != nil {
		return err
	}
	return ctx.Err()
}

// checkReplaceable fails when dir exists and is neither empty nor an OCI layout.
func checkReplaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("writing OCI layout %s: the directory exists and is not an OCI layout; not replacing it", dir)
	}
	return nil
}

// ToOCI returns img with OCI manifest, config and layer media types: the image
// WriteOCILayout writes, digest included.
func ToOCI(img v1.Image) (v1.Image, error) { return toOCI(img) }

func toOCI(img v1.Image) (v1.Image, error) {
	mt, err := img.MediaType()
	if err != nil || mt == types.OCIManifestSchema1 {
		return img, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("image has %d layers and %d diffIDs", len(layers), len(cfg.RootFS.DiffIDs))
	}
	start := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	adds := make([]mutate.Addendum, len(layers))
	for k, l := range layers {
		lmt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		adds[k] = mutate.Addendum{Layer: knownDiffID{l, cfg.RootFS.DiffIDs[k]}, MediaType: ociLayerType(lmt)}
	}
	out, err := mutate.Append(start, adds...)
	if err != nil {
		return nil, err
	}
	return mutate.ConfigFile(out, cfg)
}

// PushOptions controls Push.
type PushOptions struct {
	// Insecure talks plain http to the registry (localhost and 127.0.0.1 always get it).
	Insecure bool
	// Concurrency is how many blobs are uploaded at once (default 4).
	Concurrency int
	// Progress, when set, is called with the bytes uploaded and the total.
	Progress func(done, total int64)
	// MountFrom are other repositories of the registry (REGISTRY/REPO, a registry cache) that
	// may hold the image's layers: those the target lacks and one of them holds are mounted
	// (POST .../blobs/uploads/?mount=DIGEST&from=REPO), not uploaded.
	MountFrom []string
}

// Push uploads img to the registry as ref, with the credentials of the Docker config, and says
// which of its layers the repository already held (those are not uploaded again).
func Push(ctx context.Context, ref string, img v1.Image, opts PushOptions) (PushResult, error) {
	r, err := name.ParseReference(ref, nameOptions(opts.Insecure)...)
	if err != nil {
		return PushResult{}, fmt.Errorf("parsing reference: %w", err)
	}
	var from []name.Repository
	for _, f := range opts.MountFrom {
		repo, err := name.NewRepository(f, nameOptions(opts.Insecure)...)
		if err != nil {
			return PushResult{}, fmt.Errorf("parsing repository %q: %w", f, err)
		}
		from = append(from, repo)
	}
	res, mounts, err := countExisting(ctx, r.Context(), img, from)
	if err != nil {
		return res, fmt.Errorf("pushing %s: %w", r.Name(), err)
	}
	if len(mounts) > 0 {
		img = mountingImage{Image: img, mounts: mounts}
	}
	return res, push(ctx, r, img, opts)
}

func push(ctx context.Context, r name.Reference, img v1.Image, opts PushOptions) error {
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if opts.Concurrency > 0 {
		ropts = append(ropts, remote.WithJobs(opts.Concurrency))
	}
	done := make(chan struct{})
	if opts.Progress != nil {
		updates := make(chan v1.Update, 16)
		ropts = append(ropts, remote.WithProgress(updates))
		go func() {
			defer close(done)
			for u := range updates {
				if u.Error == nil {
					opts.Progress(u.Complete, u.Total)
				}
			}
		}()
	} else {
		close(done)
	}
	if err := remote.Write(r, img, ropts...); err != nil {
		// Not waiting for done: the channel stays open when the options are refused.
		return fmt.Errorf("pushing %s: %w", r.Name(), err)
	}
	<-done // all progress reported
	return nil
}

// outputError wraps err of writing what, spelling out a full disk.
func outputError(what, dir string, img v1.Image, err error) error {
	if !errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%s: %w", what, err)
	}
	need := "?"
	if n, e := imageSize(img); e == nil {
		need = units.IEC(n)
	}
	free := "?"
	if n, e := freeBytes(dir); e == nil {
		free = units.IEC(n)
	}
	return fmt.Errorf("%s: no space left on device in %s (%s free, the image needs about %s): %w", what, dir, free, need, err)
}

func imageSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}

// syncDir makes a rename in dir durable; errors are ignored (not every filesystem can).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// ctxWriter fails writes once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// ctxImage is an image whose layer readers fail once ctx is done, for writers that take no
// context.
type ctxImage struct {
	ctx context.Context
	v1.Image
}

func (i ctxImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	for k, l := range ls {
		ls[k] = ctxLayer{ctx: i.ctx, Layer: l}
	}
	return ls, err
}

type ctxLayer struct {
	ctx context.Context
	v1.Layer
}

func (l ctxLayer) Compressed() (io.ReadCloser, error) {
	if err := l.ctx.Err(); err != nil {
		return nil, err
	}
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return &stackedCloser{Reader: ctxReader{ctx: l.ctx, r: rc}, closers: []io.Closer{rc}}, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
