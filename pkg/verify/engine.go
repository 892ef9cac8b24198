package verify

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"
	"github.com/vm2image/vm2image/pkg/source"
)

// Engine is the part of the Docker engine's API EngineImage uses; *client.Client implements it.
type Engine interface {
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageSave(ctx context.Context, images []string, opts ...client.ImageSaveOption) (client.ImageSaveResult, error)
}

var _ Engine = (*client.Client)(nil)

// maxSavedJSON bounds the JSON files (manifest, config) read from a saved image.
const maxSavedJSON = 16 << 20

// parseBudget bounds the bytes of the layers parsed ahead of their turn: their operations wait
// in memory (at most one per 512 bytes of tar). A layer that would pass it is copied, as it
// streams, to a temporary file (raw, not unpacked) and parsed from there in its turn.
var parseBudget int64 = 256 << 20

// EngineImage compares the image ref of the Docker engine with src, as Image does, reading the
// image as the engine saves it: a stream, read once, with no archive written. The engine writes
// the layers in an order of its own and the manifest last, so each layer is parsed as it arrives
// (contents hashed, then dropped) and the layers are stacked in the manifest's order at the end;
// past a budget of parsed bytes, layers are copied raw to temporary files instead, and parsed
// from there in their turn, so that memory stays bounded.
func EngineImage(ctx context.Context, eng Engine, ref string, src source.Source, opts Options) (*Report, error) {
	res, err := eng.ImageInspect(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("inspecting %s in the docker engine: %w", ref, err)
	}
	s := &savedImage{eng: eng, ref: ref, id: res.ID, bytes: res.Size}
	if res.Config != nil {
		s.imageLabels = res.Config.Labels
	}
	return compare(ctx, s, src, opts)
}

// savedImage is an image of the engine, read through `docker save`.
type savedImage struct {
	eng         Engine
	ref, id     string
	imageLabels map[string]string
	bytes       int64 // the engine's size of the image
}

func (s *savedImage) labels() (map[string]string, error) { return s.imageLabels, nil }

// savedLayer is a layer of the stream, parsed or spooled.
type savedLayer struct {
	ops    []op
	spool  string // the layer's tar, when it was not parsed ahead
	diffID string // hex sha256 of the tar
}

// saved is what the stream held besides layers.
type saved struct {
	layers   map[string]*savedLayer
	json     map[string][]byte
	aliases  map[string]string // links docker save writes for layers it holds twice
	parsed   int64             // bytes of the layers parsed ahead
	spoolDir string
}

func (s *savedImage) flatten(ctx context.Context, f *flattener) error {
	rc, err := s.eng.ImageSave(ctx, []string{s.id}) // by ID: a tag moved meanwhile changes nothing
	if err != nil {
		return fmt.Errorf("saving %s from the docker engine: %w", s.ref, err)
	}
	defer rc.Close()
	sv, err := readSaved(ctx, f, f.count.reader(rc))
	if sv != nil && sv.spoolDir != "" {
		defer os.RemoveAll(sv.spoolDir)
	}
	if err != nil {
		return fmt.Errorf("reading %s from the docker engine: %w", s.ref, err)
	}
	return sv.stack(ctx, f)
}

// readSaved reads a `docker save` stream: layers parsed, JSON files kept.
func readSaved(ctx context.Context, f *flattener, r io.Reader) (*saved, error) {
	sv := &saved{layers: map[string]*savedLayer{}, json: map[string][]byte{}, aliases: map[string]string{}}
	tr := tar.NewReader(bufio.NewReaderSize(r, 1<<20))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return sv, nil
		}
		if err != nil {
			return sv, fmt.Errorf("reading the saved image: %w", err)
		}
		name := path.Clean(hdr.Name)
		switch {
		case hdr.Typeflag == tar.TypeSymlink:
			sv.aliases[name] = path.Join(path.Dir(name), hdr.Linkname)
		case hdr.Typeflag == tar.TypeLink:
			sv.aliases[name] = path.Clean(hdr.Linkname)
		case hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA:
		case path.Base(name) == "layer.tar" || strings.HasPrefix(name, "blobs/"):
			if err := sv.blob(ctx, f, name, tr, hdr.Size); err != nil {
				return sv, err
			}
		case strings.HasSuffix(name, ".json"):
			if sv.json[name], err = readJSONFile(tr); err != nil {
				return sv, fmt.Errorf("reading %s: %w", name, err)
			}
		}
	}
}

func readJSONFile(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSavedJSON+1))
	if err == nil && len(b) > maxSavedJSON {
		err = fmt.Errorf("over %d bytes", maxSavedJSON)
	}
	return b, err
}

// blob reads a layer (or, in the OCI form of newer engines, a JSON blob) of size bytes.
func (sv *saved) blob(ctx context.Context, f *flattener, name string, r io.Reader, size int64) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if first, _ := br.Peek(1); len(first) == 1 && first[0] == '{' {
		b, err := readJSONFile(br)
		sv.json[name] = b
		return err
	}
	h := sha256.New()
	l := &savedLayer{}
	var err error
	if sv.parsed+size > parseBudget {
		err = sv.spoolLayer(l, io.TeeReader(br, h), f.buf)
	} else {
		sv.parsed += size
		err = parseLayer(ctx, f, l, io.TeeReader(br, h))
	}
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", name, err)
	}
	l.diffID = hex.EncodeToString(h.Sum(nil))
	sv.layers[name] = l
	return nil
}

// parseLayer parses the layer r into l's operations, reading r to its end.
func parseLayer(ctx context.Context, f *flattener, l *savedLayer, r io.Reader) error {
	err := f.read(ctx, r, func(o op) error { l.ops = append(l.ops, o); return nil })
	if err == nil {
		_, err = io.CopyBuffer(io.Discard, r, f.buf)
	}
	return err
}

// spoolLayer copies the layer r to a temporary file of its own.
func (sv *saved) spoolLayer(l *savedLayer, r io.Reader, buf []byte) error {
	if sv.spoolDir == "" {
		dir, err := os.MkdirTemp("", "vm2image-verify-spool-")
		if err != nil {
			return err
		}
		sv.spoolDir = dir
	}
	f, err := os.CreateTemp(sv.spoolDir, "layer-*.tar")
	if err != nil {
		return err
	}
	l.spool = f.Name()
	_, err = io.CopyBuffer(f, r, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// stack applies the manifest's layers in order, each checked against the config's diffID.
func (sv *saved) stack(ctx context.Context, f *flattener) error {
	var m tarball.Manifest
	if err := json.Unmarshal(sv.json["manifest.json"], &m); err != nil || len(m) != 1 {
		return fmt.Errorf("reading the saved image's manifest.json: %d images (%v)", len(m), err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(sv.json[sv.resolve(m[0].Config)]))
	if err != nil {
		return fmt.Errorf("reading the saved image's config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m[0].Layers) {
		return fmt.Errorf("reading the saved image: the manifest lists %d layers, the config %d", len(m[0].Layers), len(cfg.RootFS.DiffIDs))
	}
	uses := map[string]int{}
	for _, name := range m[0].Layers {
		uses[sv.resolve(name)]++
	}
	for k, name := range m[0].Layers {
		name = sv.resolve(name)
		l := sv.layers[name]
		switch {
		case l == nil:
			return fmt.Errorf("reading the saved image: no layer %s in the stream", name)
		case l.diffID != cfg.RootFS.DiffIDs[k].Hex:
			return fmt.Errorf("reading layer %d (%s): %w: sha256:%s, the config says %s", k, name, ErrDigestMismatch, l.diffID, cfg.RootFS.DiffIDs[k])
		}
		uses[name]--
		if err := l.apply(ctx, f, int32(k), uses[name] == 0); err != nil {
			return fmt.Errorf("reading layer %d (%s): %w", k, name, err)
		}
		if uses[name] == 0 {
			delete(sv.layers, name)
		}
	}
	return nil
}

// apply applies the layer's operations as layer k. The last time, the tree takes the parsed
// nodes and the operations are dropped as they go; before, it gets copies.
func (l *savedLayer) apply(ctx context.Context, f *flattener, k int32, last bool) error {
	if l.spool != "" {
		file, err := os.Open(l.spool)
		if err != nil {
			return err
		}
		defer file.Close()
		return f.apply(ctx, k, bufio.NewReaderSize(file, 1<<20))
	}
	f.layer, f.seen = k, map[string]byte{}
	for i := range l.ops {
		if err := ctx.Err(); err != nil {
			return err
		}
		o := l.ops[i]
		if !last && o.n != nil {
			n := *o.n
			o.n = &n
		}
		if err := f.do(o); err != nil {
			return fmt.Errorf("entry %q: %w", path.Join(o.dir, o.base), err)
		}
		if last {
			l.ops[i] = op{}
		}
	}
	return nil
}

// resolve follows the links of the stream to the entry that holds the bytes.
func (sv *saved) resolve(name string) string {
	name = path.Clean(name)
	for hops := 0; hops < 8; hops++ {
		next, ok := sv.aliases[name]
		if !ok {
			break
		}
		name = next
	}
	return name
}
