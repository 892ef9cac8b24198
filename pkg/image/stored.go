package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// storedImage is an image whose manifest and config are held in memory and whose layers are
// compressed blobs on disk, so that writers read them without compressing or downloading again.
type storedImage struct {
	manifest  []byte
	mediaType types.MediaType
	config    []byte
	layers    map[v1.Hash]v1.Layer
}

var _ partial.CompressedImageCore = (*storedImage)(nil)

func (i *storedImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *storedImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *storedImage) RawManifest() ([]byte, error)        { return i.manifest, nil }

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	if cn, err := partial.ConfigName(i); err == nil && cn == h {
		return partial.ConfigLayer(i)
	}
	return nil, fmt.Errorf("image has no blob %s", h)
}

// newStoredImage builds an image of rawConfig and layers with a manifest of media type mt.
func newStoredImage(rawConfig []byte, layers []*fileLayer, mt types.MediaType) (v1.Image, error) {
	cfgType := types.DockerConfigJSON
	if mt == types.OCIManifestSchema1 {
		cfgType = types.OCIConfigJSON
	}
	cfgHash, cfgSize, err := v1.SHA256(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     mt,
		Config:        v1.Descriptor{MediaType: cfgType, Size: cfgSize, Digest: cfgHash},
	}
	ls := make([]v1.Layer, len(layers))
	for k, l := range layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: l.mediaType, Size: l.meta.Size, Digest: l.meta.Digest})
		ls[k] = l
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return imageFromRaw(raw, mt, rawConfig, ls)
}

func imageFromRaw(rawManifest []byte, mt types.MediaType, rawConfig []byte, layers []v1.Layer) (v1.Image, error) {
	si := &storedImage{manifest: rawManifest, mediaType: mt, config: rawConfig, layers: map[v1.Hash]v1.Layer{}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		si.layers[d] = l
	}
	return partial.CompressedToImage(si)
}

// readArchive reads the image ref (or the only image) of a docker-archive (the `docker save`
// format) into st: uncompressed layers are compressed with gzip once, compressed ones are kept as
// they are, and layers st already holds are not read at all.
func readArchive(ctx context.Context, file, ref string, st blobStore) (v1.Image, error) {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		return nil, fmt.Errorf("reading archive manifest: %w", err)
	}
	desc, err := pickArchiveImage(m, ref)
	if err != nil {
		return nil, err
	}
	rc, err := openArchiveEntry(file, desc.Config)
	if err != nil {
		return nil, err
	}
	rawCfg, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parsing image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(desc.Layers) {
		return nil, fmt.Errorf("archive lists %d layers, its config %d", len(desc.Layers), len(cfg.RootFS.DiffIDs))
	}
	layers := make([]*fileLayer, len(desc.Layers))
	mt := types.DockerManifestSchema2
	for k, p := range desc.Layers {
		if layers[k], err = archiveLayer(ctx, file, p, cfg.RootFS.DiffIDs[k], st); err != nil {
			return nil, err
		}
		if layers[k].meta.Compression == Zstd {
			mt = types.OCIManifestSchema1
		}
	}
	for _, l := range layers {
		l.mediaType = l.meta.Compression.mediaType(mt == types.OCIManifestSchema1)
	}
	return newStoredImage(rawCfg, layers, mt)
}

func pickArchiveImage(m tarball.Manifest, ref string) (*tarball.Descriptor, error) {
	if len(m) == 1 && ref == "" {
		return &m[0], nil
	}
	if want, err := name.ParseReference(ref); err == nil {
		for k := range m {
			for _, t := range m[k].RepoTags {
				if got, err := name.ParseReference(t); err == nil && got.Name() == want.Name() {
					return &m[k], nil
				}
			}
		}
	}
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	if ref == "" {
		return nil, fmt.Errorf("archive holds %d images (%q); name one", len(m), tags)
	}
	return nil, fmt.Errorf("archive holds %d images (%q) and none is %q", len(m), tags, ref)
}

// archiveLayer returns the layer at entry of a docker-archive, stored in st.
func archiveLayer(ctx context.Context, file, entry string, diffID v1.Hash, st blobStore) (*fileLayer, error) {
	for _, c := range []Compression{Gzip, Zstd} {
		if l, ok := st.lookup(diffID, c); ok {
			return l, nil
		}
	}
	rc, err := openArchiveEntry(file, entry)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	var l *fileLayer
	switch c := sniffCompression(br); c {
	case "none":
		l, err = st.compress(ctx, br, Gzip, 0)
	case Gzip, Zstd:
		l, err = st.ingest(ctx, br, v1.Hash{})
	default:
		err = fmt.Errorf("layer %s: unsupported compression %s", entry, c)
	}
	if err != nil {
		return nil, err
	}
	if l.meta.DiffID != diffID {
		return nil, fmt.Errorf("layer %s has diffID %s, the config says %s", entry, l.meta.DiffID, diffID)
	}
	return l, nil
}

// openArchiveEntry opens the file called name in the tar archive file, following the symlinks
// and hardlinks `docker save` writes for layers that appear twice.
func openArchiveEntry(file, name string) (io.ReadCloser, error) {
	want := path.Clean(name)
	for hops := 0; hops < 8; hops++ {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(f)
		next := ""
		for {
			h, err := tr.Next()
			if err != nil {
				f.Close()
				if err == io.EOF {
					return nil, fmt.Errorf("archive %s has no entry %s", file, name)
				}
				return nil, fmt.Errorf("reading archive %s: %w", file, err)
			}
			if path.Clean(h.Name) != want {
				continue
			}
			switch h.Typeflag {
			case tar.TypeSymlink:
				next = path.Join(path.Dir(want), h.Linkname)
			case tar.TypeLink:
				next = path.Clean(h.Linkname)
			default:
				return &stackedCloser{Reader: tr, closers: []io.Closer{f}}, nil
			}
			break
		}
		f.Close()
		want = next
	}
	return nil, fmt.Errorf("archive %s: too many links to %s", file, name)
}
