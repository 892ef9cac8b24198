package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Transports, as skopeo names them.
const (
	TransportDaemon   = "docker-daemon"  // the local Docker engine
	TransportRegistry = "registry"       // a registry (also written docker://)
	TransportOCI      = "oci"            // an OCI image layout directory
	TransportArchive  = "docker-archive" // a `docker save` tarball
	TransportHTTP     = "http"           // a root-filesystem tarball at an http(s) URL
)

// ErrNotFound is wrapped by the error of Resolve when no place had the image.
var ErrNotFound = errors.New("base image not found")

// ResolveOptions controls Resolve.
type ResolveOptions struct {
	// Platform selects an image from a multi-platform index and is checked against the
	// image's config; root-filesystem tarballs get it as their os/arch. Default: linux and the
	// converter's architecture.
	Platform v1.Platform
	// CacheDir holds compressed base layers (by diffID) and downloads (by sha256), shared by
	// runs and safe for concurrent ones. Default: $XDG_CACHE_HOME/vm2image.
	CacheDir string
	// Insecure talks plain http to the registry (localhost and 127.0.0.1 always get it).
	Insecure bool
	// Progress, when set, is called with the bytes done and total (-1 when unknown) of a
	// download.
	Progress func(done, total int64)
	// Engine is the Docker engine to ask; nil connects to the one DOCKER_HOST names.
	Engine EngineClient
}

func (o *ResolveOptions) applyDefaults() {
	if o.Platform.OS == "" {
		o.Platform.OS = "linux"
	}
	if o.Platform.Architecture == "" {
		o.Platform.Architecture = runtime.GOARCH
	}
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		o.CacheDir = filepath.Join(dir, "vm2image")
	}
	if o.Progress == nil {
		o.Progress = func(int64, int64) {}
	}
}

// Base is a resolved base image.
type Base struct {
	Image     v1.Image
	Ref       string   // the reference without its transport
	Transport string   // where it came from: one of the Transport constants
	Digest    v1.Hash  // the image's manifest digest
	Tried     []string // the places tried before, each with why it failed
}

// Attempt is one place Resolve looked, and why the image was not taken from there.
type Attempt struct {
	Place string
	Err   error
}

// ResolveError lists every place Resolve tried. It wraps ErrNotFound and each attempt's error.
type ResolveError struct {
	Ref      string
	Attempts []Attempt
}

func (e *ResolveError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "resolving base image %q: not found in any of %d places tried:", e.Ref, len(e.Attempts))
	for _, a := range e.Attempts {
		fmt.Fprintf(&b, "\n  - %s: %v", a.Place, a.Err)
	}
	return b.String()
}

func (e *ResolveError) Unwrap() []error {
	errs := []error{ErrNotFound}
	for _, a := range e.Attempts {
		errs = append(errs, a.Err)
	}
	return errs
}

// place is somewhere a reference may resolve.
type place struct {
	name      string
	transport string
	ref       string
	get       func(ctx context.Context) (v1.Image, error)
}

// Resolve finds the image ref names. A reference without a transport is looked up in the local
// Docker engine, then in its registry. A transport prefix names the one place to look:
// docker-daemon:REF, registry://REF or docker://REF, oci:DIR[:TAG], docker-archive:FILE[:REF],
// or an http(s):// URL of a root-filesystem tarball (optionally ending in #sha256=HEX), which is
// downloaded with resume into the cache and becomes a one-layer image. Base layers that are not
// already compressed blobs (engine, archives, tarballs) are compressed once into the cache; layers
// from a registry are downloaded once into it.
func Resolve(ctx context.Context, ref string, opts ResolveOptions) (*Base, error) {
	opts.applyDefaults()
	r := &resolver{opts: opts, st: blobStore{dir: opts.CacheDir}}
	defer r.close()
	places, err := r.places(ref)
	if err != nil {
		return nil, err
	}
	rerr := &ResolveError{Ref: ref}
	for _, p := range places {
		img, err := p.get(ctx)
		if err == nil {
			var d v1.Hash
			if d, err = img.Digest(); err == nil {
				return &Base{Image: img, Ref: p.ref, Transport: p.transport, Digest: d, Tried: rerr.tried()}, nil
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("resolving base image %q: %w", ref, ctx.Err())
		}
		rerr.Attempts = append(rerr.Attempts, Attempt{Place: p.name, Err: err})
	}
	return nil, rerr
}

func (e *ResolveError) tried() []string {
	var s []string
	for _, a := range e.Attempts {
		s = append(s, a.Place+": "+a.Err.Error())
	}
	return s
}

type resolver struct {
	opts   ResolveOptions
	st     blobStore
	engine EngineClient
	closer io.Closer // the engine Resolve connected to itself
}

func (r *resolver) close() {
	if r.closer != nil {
		r.closer.Close()
	}
}

// places returns where ref may resolve, in order.
func (r *resolver) places(ref string) ([]*place, error) {
	switch {
	case strings.HasPrefix(ref, "docker-daemon:"):
		return []*place{r.daemonPlace(strings.TrimPrefix(ref, "docker-daemon:"))}, nil
	case strings.HasPrefix(ref, "registry://"), strings.HasPrefix(ref, "docker://"):
		_, rest, _ := strings.Cut(ref, "://")
		return []*place{r.registryPlace(rest)}, nil
	case strings.HasPrefix(ref, "oci:"):
		return []*place{r.layoutPlace(strings.TrimPrefix(ref, "oci:"))}, nil
	case strings.HasPrefix(ref, "docker-archive:"):
		return []*place{r.archivePlace(strings.TrimPrefix(ref, "docker-archive:"))}, nil
	case strings.HasPrefix(ref, "http://"), strings.HasPrefix(ref, "https://"):
		return []*place{r.httpPlace(ref)}, nil
	case ref == "":
		return nil, errors.New("resolving base image: empty reference")
	}
	return []*place{r.daemonPlace(ref), r.registryPlace(ref)}, nil
}

func (r *resolver) daemonPlace(ref string) *place {
	p := &place{name: "docker engine", transport: TransportDaemon, ref: ref}
	p.get = func(ctx context.Context) (v1.Image, error) {
		e, err := r.engineClient(ctx)
		if err != nil {
			return nil, err
		}
		if h := engineHost(e); h != "" {
			p.name = "docker engine at " + h
		}
		return fromEngine(ctx, e, ref, r.st, r.opts.Platform)
	}
	return p
}

func (r *resolver) engineClient(ctx context.Context) (EngineClient, error) {
	if r.opts.Engine != nil {
		return r.opts.Engine, nil
	}
	if r.engine == nil {
		e, err := NewEngine(ctx)
		if err != nil {
			return nil, err
		}
		r.engine = e
		r.closer, _ = e.(io.Closer)
	}
	return r.engine, nil
}

func (r *resolver) registryPlace(ref string) *place {
	p := &place{name: "registry " + ref, transport: TransportRegistry, ref: ref}
	nref, err := name.ParseReference(ref, nameOptions(r.opts.Insecure)...)
	if err == nil {
		p.name = "registry " + nref.Context().RegistryStr() + " (" + nref.Name() + ")"
	}
	p.get = func(ctx context.Context) (v1.Image, error) {
		if err != nil {
			return nil, fmt.Errorf("parsing reference: %w", err)
		}
		img, err := remote.Image(nref, remote.WithContext(ctx), remote.WithPlatform(r.opts.Platform),
			remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return nil, err
		}
		return localize(ctx, img, r.st)
	}
	return p
}

func nameOptions(insecure bool) []name.Option {
	if insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (r *resolver) layoutPlace(ref string) *place {
	dir, tag := splitLayoutRef(ref)
	p := &place{name: "OCI layout " + dir, transport: TransportOCI, ref: ref}
	if tag != "" {
		p.name += " (tag " + tag + ")"
	}
	p.get = func(context.Context) (v1.Image, error) {
		img, err := fromLayout(dir, tag, r.opts.Platform)
		if err != nil {
			return nil, err
		}
		return img, checkPlatform(img, r.opts.Platform)
	}
	return p
}

func (r *resolver) archivePlace(ref string) *place {
	file, imgRef := splitArchiveRef(ref)
	p := &place{name: "docker-archive " + file, transport: TransportArchive, ref: ref}
	p.get = func(ctx context.Context) (v1.Image, error) {
		img, err := readArchive(ctx, file, imgRef, r.st)
		if err != nil {
			return nil, err
		}
		return img, checkPlatform(img, r.opts.Platform)
	}
	return p
}

// splitArchiveRef splits "FILE[:REF]": FILE is the whole string when such a file exists, else the
// part before the first colon whose prefix names an existing file (REF may hold colons itself).
func splitArchiveRef(ref string) (file, imgRef string) {
	if _, err := os.Stat(ref); err == nil {
		return ref, ""
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] != ':' {
			continue
		}
		if fi, err := os.Stat(ref[:i]); err == nil && !fi.IsDir() {
			return ref[:i], ref[i+1:]
		}
	}
	return ref, ""
}

func (r *resolver) httpPlace(url string) *place {
	p := &place{name: "download " + url, transport: TransportHTTP, ref: url}
	p.get = func(ctx context.Context) (v1.Image, error) {
		return fromURL(ctx, url, r.opts, r.st)
	}
	return p
}

// checkPlatform fails when img's config names another os or architecture than p.
func checkPlatform(img v1.Image, p v1.Platform) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading image config: %w", err)
	}
	if (cfg.OS != "" && cfg.OS != p.OS) || (cfg.Architecture != "" && cfg.Architecture != p.Architecture) {
		return fmt.Errorf("image is for %s/%s, want %s/%s", cfg.OS, cfg.Architecture, p.OS, p.Architecture)
	}
	return nil
}

// localize downloads every layer of a remote image into st once (keeping each blob as it is and
// checking its digest) and returns the same image, manifest digest unchanged, read from st.
func localize(ctx context.Context, img v1.Image, st blobStore) (v1.Image, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	remoteLayers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	layers := make([]v1.Layer, len(remoteLayers))
	for k, rl := range remoteLayers {
		if layers[k], err = localizeLayer(ctx, rl, st); err != nil {
			return nil, fmt.Errorf("downloading layer %d: %w", k, err)
		}
	}
	return imageFromRaw(raw, mt, rawCfg, layers)
}

func localizeLayer(ctx context.Context, rl v1.Layer, st blobStore) (v1.Layer, error) {
	digest, err := rl.Digest()
	if err != nil {
		return nil, err
	}
	lmt, err := rl.MediaType()
	if err != nil {
		return nil, err
	}
	diffID, err := rl.DiffID() // from the config: no download
	if err != nil {
		return nil, err
	}
	for _, c := range []Compression{Gzip, Zstd} {
		if l, ok := st.lookup(diffID, c); ok && l.meta.Digest == digest {
			return l.withMediaType(lmt), nil
		}
	}
	rc, err := rl.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	l, err := st.ingest(ctx, rc, digest)
	if err != nil {
		return nil, err
	}
	if l.meta.DiffID != diffID {
		return nil, fmt.Errorf("layer %s has diffID %s, the config says %s", digest, l.meta.DiffID, diffID)
	}
	return l.withMediaType(lmt), nil
}
