package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// LayerFile is a layer for Assemble: an uncompressed tar, on disk at Path or from Open.
type LayerFile struct {
	Path string
	Open func() (io.ReadCloser, error) // used when Path is empty
	// Comment and CreatedBy go into the layer's history entry, e.g. "vm2image: vm diff".
	Comment   string
	CreatedBy string // default "vm2image"
	// DiffID, when known (a cached packages layer), lets Assemble take the compressed blob
	// AssembleOptions.Store already holds instead of compressing the layer again.
	DiffID v1.Hash
}

func (f LayerFile) open() (io.ReadCloser, error) {
	if f.Path != "" {
		return os.Open(f.Path)
	}
	if f.Open != nil {
		return f.Open()
	}
	return nil, errors.New("layer has neither Path nor Open")
}

// ConfigSpec is what Assemble sets in the image config over the base's. Env entries replace
// the base's of the same name; Labels and ExposedPorts ("80/tcp", "53/udp", "8080" = tcp) add to
// the base's; a non-nil Entrypoint also replaces the base's Cmd with Cmd, as a Dockerfile's
// ENTRYPOINT does. Empty fields keep the base's value.
type ConfigSpec struct {
	Env              []string
	WorkingDir, User string
	ExposedPorts     []string
	Entrypoint, Cmd  []string
	Labels           map[string]string
	StopSignal       string
	Author           string
	// Created stamps the image and its new history entries; the zero value means now. Fix it
	// for reproducible digests.
	Created time.Time
}

// AssembleOptions controls Assemble.
type AssembleOptions struct {
	// Compression of the new layers, gzip by default. Zstd makes the image an OCI image; the
	// Docker engine 20.10 cannot load it.
	Compression Compression
	Level       int // compression level; 0 is the library default
	// Concurrency is how many layers are compressed at once (each already uses every CPU);
	// default 2.
	Concurrency int
	// WorkDir receives the compressed layer blobs, which the image reads until it is no longer
	// used. Default: a new temporary directory that the image's Close removes.
	WorkDir string
	// Store is a lasting blob store (the image cache) for layers with a known DiffID: compressed
	// there once, taken from there by every later Assemble.
	Store string
}

// assembled is what Assemble returns: the image, and the work directory it owns.
type assembled struct {
	v1.Image
	ownedDir string
}

// Close removes the work directory Assemble created, if it did.
func (a *assembled) Close() error {
	if a.ownedDir == "" {
		return nil
	}
	return os.RemoveAll(a.ownedDir)
}

// Assemble stacks layers over base and applies cfg. Each layer is compressed once, in a single
// pass that also computes its digest and diffID, into a blob in the work directory that every
// writer then reads as it is; base layers keep their own blobs. Each new layer gets a history
// entry with its comment. The image follows the base's manifest format (Docker or OCI), except
// that zstd makes it OCI. It implements io.Closer when Assemble made the work directory.
func Assemble(ctx context.Context, base v1.Image, layers []LayerFile, cfg ConfigSpec, opts AssembleOptions) (v1.Image, error) {
	if err := opts.Compression.validate(); err != nil {
		return nil, err
	}
	baseCfg, err := base.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading base config: %w", err)
	}
	final, err := applyConfig(baseCfg, cfg)
	if err != nil {
		return nil, err
	}
	baseMT, err := base.MediaType()
	if err != nil {
		return nil, fmt.Errorf("reading base manifest: %w", err)
	}
	oci := baseMT == types.OCIManifestSchema1 || opts.Compression.orDefault() == Zstd
	dir, owned := opts.WorkDir, ""
	if dir == "" {
		if dir, err = os.MkdirTemp("", "vm2image-layers-"); err != nil {
			return nil, fmt.Errorf("creating work directory: %w", err)
		}
		owned = dir
	}
	img, err := assemble(ctx, base, baseCfg, final, layers, oci, blobStore{dir: dir}, opts)
	if err != nil {
		if owned != "" {
			os.RemoveAll(owned)
		}
		return nil, err
	}
	return &assembled{Image: img, ownedDir: owned}, nil
}

func assemble(ctx context.Context, base v1.Image, baseCfg, final *v1.ConfigFile, files []LayerFile,
	oci bool, st blobStore, opts AssembleOptions) (v1.Image, error) {
	news, err := compressAll(ctx, st, files, opts)
	if err != nil {
		return nil, err
	}
	baseLayers, err := base.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading base layers: %w", err)
	}
	if len(baseLayers) != len(baseCfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("base has %d layers and %d diffIDs", len(baseLayers), len(baseCfg.RootFS.DiffIDs))
	}
	start := empty.Image
	if oci {
		start = mutate.ConfigMediaType(mutate.MediaType(start, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	var adds []mutate.Addendum
	for k, l := range baseLayers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		if oci {
			mt = ociLayerType(mt)
		}
		// The config knows the diffID: no need to decompress a layer to learn it.
		adds = append(adds, mutate.Addendum{Layer: knownDiffID{l, baseCfg.RootFS.DiffIDs[k]}, MediaType: mt})
	}
	for k, l := range news {
		l = l.withMediaType(opts.Compression.mediaType(oci))
		adds = append(adds, mutate.Addendum{Layer: l})
		final.RootFS.DiffIDs = append(final.RootFS.DiffIDs, l.meta.DiffID)
		by := files[k].CreatedBy
		if by == "" {
			by = "vm2image"
		}
		final.History = append(final.History, v1.History{Created: final.Created, CreatedBy: by,
			Comment: files[k].Comment, Author: final.Author})
	}
	img, err := mutate.Append(start, adds...)
	if err != nil {
		return nil, err
	}
	return mutate.ConfigFile(img, final)
}

// knownDiffID is a layer whose diffID comes from its image's config.
type knownDiffID struct {
	v1.Layer
	diffID v1.Hash
}

func (l knownDiffID) DiffID() (v1.Hash, error) { return l.diffID, nil }

func ociLayerType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	}
	return mt
}

// compressAll compresses files into st, opts.Concurrency at a time.
func compressAll(ctx context.Context, st blobStore, files []LayerFile, opts AssembleOptions) ([]*fileLayer, error) {
	conc := opts.Concurrency
	if conc <= 0 {
		conc = 2
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]*fileLayer, len(files))
	errs := make([]error, len(files))
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for k, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[k] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			if out[k], errs[k] = compressFile(ctx, st, f, opts); errs[k] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	var first error
	for k, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = fmt.Errorf("compressing layer %d (%s): %w", k, files[k].Comment, err)
		}
	}
	return out, first
}

func compressFile(ctx context.Context, st blobStore, f LayerFile, opts AssembleOptions) (*fileLayer, error) {
	rc, err := f.open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if f.DiffID.Hex != "" && opts.Level == 0 {
		if l, ok := st.lookup(f.DiffID, opts.Compression); ok { // compressed while produced
			return l, nil
		}
	}
	if f.DiffID.Hex != "" && opts.Store != "" {
		return storedLayer(ctx, blobStore{dir: opts.Store}, f.DiffID, bufio.NewReaderSize(rc, 1<<20), opts)
	}
	return st.compress(ctx, bufio.NewReaderSize(rc, 1<<20), opts.Compression, opts.Level)
}

// storedLayer returns the blob of diffID the store holds (at the default level), or compresses
// r into the store; r must hash to diffID.
func storedLayer(ctx context.Context, st blobStore, diffID v1.Hash, r io.Reader, opts AssembleOptions) (*fileLayer, error) {
	if opts.Level == 0 {
		if l, ok := st.lookup(diffID, opts.Compression); ok {
			return l, nil
		}
	}
	l, err := st.compress(ctx, r, opts.Compression, opts.Level)
	if err != nil {
		return nil, err
	}
	if l.meta.DiffID != diffID {
		return nil, fmt.Errorf("layer hashes to %s, not to the %s it was built as", l.meta.DiffID, diffID)
	}
	return l, nil
}

// applyConfig returns a copy of base with spec applied (layers and history are left to the caller).
func applyConfig(base *v1.ConfigFile, spec ConfigSpec) (*v1.ConfigFile, error) {
	cfg := base.DeepCopy()
	c := &cfg.Config
	env, err := mergeEnv(c.Env, spec.Env)
	if err != nil {
		return nil, err
	}
	c.Env = env
	if err := addPorts(c, spec.ExposedPorts); err != nil {
		return nil, err
	}
	setIf(&c.WorkingDir, spec.WorkingDir)
	setIf(&c.User, spec.User)
	setIf(&c.StopSignal, spec.StopSignal)
	setIf(&cfg.Author, spec.Author)
	if spec.Entrypoint != nil {
		c.Entrypoint, c.Cmd = spec.Entrypoint, spec.Cmd
	} else if spec.Cmd != nil {
		c.Cmd = spec.Cmd
	}
	if len(spec.Labels) > 0 && c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range spec.Labels {
		c.Labels[k] = v
	}
	created := spec.Created
	if created.IsZero() {
		created = time.Now()
	}
	cfg.Created = v1.Time{Time: created.UTC().Truncate(time.Second)}
	return cfg, nil
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// mergeEnv returns base with add's variables replacing those of the same name, in base's order,
// and the new ones appended.
func mergeEnv(base, add []string) ([]string, error) {
	out := append([]string(nil), base...)
	at := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		at[k] = i
	}
	for _, kv := range add {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("environment entry %q is not NAME=VALUE", kv)
		}
		if i, seen := at[k]; seen {
			out[i] = kv
			continue
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	return out, nil
}

// addPorts adds ports ("80/tcp", "53/udp", "132/sctp", or "8080" for tcp) to c.ExposedPorts.
func addPorts(c *v1.Config, ports []string) error {
	for _, p := range ports {
		num, proto, ok := strings.Cut(strings.ToLower(strings.TrimSpace(p)), "/")
		if !ok {
			proto = "tcp"
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 || (proto != "tcp" && proto != "udp" && proto != "sctp") {
			return fmt.Errorf("exposed port %q is not PORT[/tcp|udp|sctp]", p)
		}
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		c.ExposedPorts[strconv.Itoa(n)+"/"+proto] = struct{}{}
	}
	return nil
}

// Precompress compresses the layer f, whose DiffID is set, into the blob store at dir as an
// Assemble with that Store would, so that the Assemble finds it done: run it beside other work.
func Precompress(ctx context.Context, dir string, f LayerFile, c Compression) error {
	if f.DiffID.Hex == "" {
		return errors.New("precompressing a layer: its diffID is not known")
	}
	if err := c.validate(); err != nil {
		return err
	}
	st := blobStore{dir: dir}
	if _, ok := st.lookup(f.DiffID, c); ok {
		return nil
	}
	rc, err := f.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = storedLayer(ctx, st, f.DiffID, bufio.NewReaderSize(rc, 1<<20), AssembleOptions{Compression: c})
	return err
}

// CompressInto compresses r, an uncompressed layer tar, into the blob store at dir (Assemble's
// WorkDir or Store) and returns its diffID: a LayerFile of that DiffID is then taken from there
// by Assemble. It lets a layer be compressed while it is produced.
func CompressInto(ctx context.Context, dir string, r io.Reader, c Compression) (v1.Hash, error) {
	if err := c.validate(); err != nil {
		return v1.Hash{}, err
	}
	l, err := blobStore{dir: dir}.compress(ctx, r, c, 0)
	if err != nil {
		return v1.Hash{}, err
	}
	return l.meta.DiffID, nil
}
