package regcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vm2image/vm2image/pkg/image"
)

// Cache is a cache repository in a registry.
type Cache struct {
	repo   name.Repository
	client *http.Client
	// MaxBytes bounds the compressed and uncompressed size of a layer taken from the cache.
	MaxBytes int64
}

// Open returns the cache repository ref (REGISTRY/REPOSITORY), with the Docker config's
// credentials; insecure talks plain http (localhost and 127.0.0.1 always get it).
func Open(ctx context.Context, ref string, insecure bool) (*Cache, error) {
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parsing the cache repository %q: %w", ref, err)
	}
	auth, err := authn.DefaultKeychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("finding credentials for %s: %w", repo, err)
	}
	scopes := []string{repo.Scope(transport.PushScope)}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, http.DefaultTransport, scopes)
	if err != nil {
		return nil, fmt.Errorf("reaching the cache repository %s: %w", repo, err)
	}
	return &Cache{repo: repo, client: &http.Client{Transport: rt}, MaxBytes: DefaultMaxBytes}, nil
}

// Repo is the cache repository's name (REGISTRY/REPOSITORY).
func (c *Cache) Repo() string { return c.repo.Name() }

// Repository is the cache repository.
func (c *Cache) Repository() name.Repository { return c.repo }

func (c *Cache) url(kind, ref string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", c.repo.Scheme(), c.repo.RegistryStr(), c.repo.RepositoryStr(), kind, ref)
}

// get fetches a manifest or blob; found is false on 404. The body is the caller's to close.
func (c *Cache) get(ctx context.Context, kind, ref string, accept types.MediaType) (io.ReadCloser, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(kind, ref), nil)
	if err != nil {
		return nil, false, err
	}
	if accept != "" {
		req.Header.Set("Accept", string(accept))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, true, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, false, nil
	}
	resp.Body.Close()
	return nil, false, fmt.Errorf("GET %s %s: registry answered %s", kind, ref, resp.Status)
}

// readBounded reads at most max bytes of rc and closes it; more is an error.
func readBounded(rc io.ReadCloser, max int64, what string) ([]byte, error) {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s over %d bytes", ErrEntry, what, max)
	}
	return b, nil
}

// Lookup finds key's entry for layers compressed with compression: nil without an error when
// the cache has none. An entry that is not what it claims is an ErrEntry error.
func (c *Cache) Lookup(ctx context.Context, key, compression string) (*Entry, error) {
	tag := Tag(key, compression)
	rc, ok, err := c.get(ctx, "manifests", tag, types.OCIManifestSchema1)
	if err != nil || !ok {
		return nil, err
	}
	raw, err := readBounded(rc, MaxManifest, "cache manifest "+tag)
	if err != nil {
		return nil, err
	}
	cfgDesc, layer, err := DecodeManifest(raw, c.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("cache manifest %s: %w", tag, err)
	}
	rc, ok, err = c.get(ctx, "blobs", cfgDesc.Digest.String(), "")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: cache manifest %s: its config %s is missing", ErrEntry, tag, cfgDesc.Digest)
	}
	cfg, err := readBounded(rc, cfgDesc.Size, "cache config "+cfgDesc.Digest.String())
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(cfg); "sha256:"+hex.EncodeToString(sum[:]) != cfgDesc.Digest.String() || int64(len(cfg)) != cfgDesc.Size {
		return nil, fmt.Errorf("%w: cache manifest %s: its config does not match digest %s", ErrEntry, tag, cfgDesc.Digest)
	}
	e, err := DecodeEntry(cfg, layer, key, compression, c.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("cache manifest %s: %w", tag, err)
	}
	return e, nil
}

// Fetch downloads e's blob into the blob store at storeDir (the image cache) and writes the
// uncompressed layer to tar, checking sizes, digest and diffID as it goes (image.IngestChecked):
// on an error nothing is stored and what tar received must be discarded.
func (c *Cache) Fetch(ctx context.Context, e *Entry, storeDir string, tar io.Writer) error {
	want, err := e.want()
	if err != nil {
		return err
	}
	rc, ok, err := c.get(ctx, "blobs", e.Digest, "")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: blob %s is missing", ErrEntry, e.Digest)
	}
	defer rc.Close()
	if err := image.IngestChecked(ctx, storeDir, rc, want, tar); err != nil {
		return fmt.Errorf("%w: %w", ErrEntry, err)
	}
	return nil
}

func (e *Entry) want() (image.BlobWant, error) {
	d, err := v1.NewHash(e.Digest)
	if err != nil {
		return image.BlobWant{}, fmt.Errorf("%w: digest %q", ErrEntry, e.Digest)
	}
	di, err := v1.NewHash(e.DiffID)
	if err != nil {
		return image.BlobWant{}, fmt.Errorf("%w: diffID %q", ErrEntry, e.DiffID)
	}
	return image.BlobWant{Digest: d, Size: e.Size, DiffID: di, UncompressedSize: e.UncompressedSize,
		Compression: image.Compression(e.Compression)}, nil
}

// Put stores layer (compressed with compression) as key's entry, with meta. mountFrom, when
// set, is a repository of the same registry that holds the blob already (the image's): the
// registry mounts it instead of receiving it again.
func (c *Cache) Put(ctx context.Context, key, compression string, layer v1.Layer, meta json.RawMessage, mountFrom *name.Repository) error {
	e := Entry{Version: entryVersion, Key: key, Compression: compression, Meta: meta}
	d, err := layer.Digest()
	if err != nil {
		return err
	}
	di, err := layer.DiffID()
	if err != nil {
		return err
	}
	mt, err := layer.MediaType()
	if err != nil {
		return err
	}
	if e.Size, err = layer.Size(); err != nil {
		return err
	}
	e.Digest, e.DiffID, e.MediaType = d.String(), di.String(), string(mt)
	e.UncompressedSize, err = uncompressedSize(layer)
	if err != nil {
		return err
	}
	cfg, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if mountFrom != nil && mountFrom.RegistryStr() == c.repo.RegistryStr() {
		layer = &remote.MountableLayer{Layer: layer, Reference: mountFrom.Tag("latest")}
	}
	img, err := partial.CompressedToImage(&entryImage{config: cfg, layer: layer, desc: v1.Descriptor{MediaType: mt, Size: e.Size, Digest: d}})
	if err != nil {
		return err
	}
	ref := c.repo.Tag(Tag(key, compression))
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("pushing cache entry %s: %w", ref, err)
	}
	return nil
}

// uncompressedSize is the layer's uncompressed size, known without reading it when the layer
// says (the image package's layers do), else counted.
func uncompressedSize(l v1.Layer) (int64, error) {
	if s, ok := l.(interface{ UncompressedSize() (int64, error) }); ok {
		return s.UncompressedSize()
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.Copy(io.Discard, rc)
}

// entryImage is a cache manifest as an image: an Entry config and one layer.
type entryImage struct {
	config []byte
	layer  v1.Layer
	desc   v1.Descriptor
}

var _ partial.CompressedImageCore = (*entryImage)(nil)

func (i *entryImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *entryImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func (i *entryImage) RawManifest() ([]byte, error) {
	cd, cs, err := v1.SHA256(bytes.NewReader(i.config))
	if err != nil {
		return nil, err
	}
	return json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: ConfigMediaType, Size: cs, Digest: cd}, Layers: []v1.Descriptor{i.desc}})
}

func (i *entryImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.desc.Digest {
		return i.layer, nil
	}
	if cn, err := partial.ConfigName(i); err == nil && cn == h {
		return partial.ConfigLayer(i)
	}
	return nil, fmt.Errorf("cache entry has no blob %s", h)
}
