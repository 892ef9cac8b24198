package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/client"
	"github.com/vm2image/vm2image/pkg/source"
)

// fakeEngine serves one saved image as `docker save` writes it: layer directories in the order
// of their names, the config, manifest.json last.
type fakeEngine struct {
	labels map[string]string
	save   []byte
	size   int64 // the image's size the engine gives
}

func (e *fakeEngine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	var r client.ImageInspectResult
	r.ID, r.Size = "sha256:feed", e.size
	r.Config = &dockerspec.DockerOCIImageConfig{}
	r.Config.Labels = e.labels
	return r, nil
}

func (e *fakeEngine) ImageSave(context.Context, []string, ...client.ImageSaveOption) (client.ImageSaveResult, error) {
	return io.NopCloser(bytes.NewReader(e.save)), nil
}

// savedStream writes layers as docker save does; dup names a layer stored as a link to the
// first one; badDiffID lies about the last layer's diffID in the config.
func savedStream(t *testing.T, layers [][]byte, dup, badDiffID bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, b []byte) {
		must(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}))
		tw.Write(b)
	}
	cfg := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}
	var names []string
	for k := len(layers) - 1; k >= 0; k-- { // the engine's order is not the layers'
		name := fmt.Sprintf("%02d/layer.tar", 10-k)
		file(fmt.Sprintf("%02d/VERSION", 10-k), []byte("1.0"))
		file(name, layers[k])
		names = append([]string{name}, names...)
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(l))})
	}
	if dup {
		must(t, tw.WriteHeader(&tar.Header{Name: "99/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../" + names[0]}))
		names = append(names, "99/layer.tar")
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, cfg.RootFS.DiffIDs[0])
	}
	if badDiffID {
		cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1].Hex = strings.Repeat("0", 64)
	}
	b, _ := json.Marshal(cfg)
	file("cafe.json", b)
	b, _ = json.Marshal(tarball.Manifest{{Config: "cafe.json", Layers: names}})
	file("manifest.json", b)
	must(t, tw.Close())
	return buf.Bytes()
}

// TestEngineImage reads the test image as the engine saves it: equal to its VM; a layer that is
// there twice (a link in the stream) is applied twice; a diffID that does not match is an error.
func TestEngineImage(t *testing.T) {
	root := vmRoot(t)
	src, err := source.Open(context.Background(), "dir:"+root, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	labels := map[string]string{"org.vm2image.excludes": `["/tmp/*"]`}
	layers := imageLayers(t)
	for _, budget := range []int64{parseBudget, 2000} { // the second spools the base layer
		defer func(b int64) { parseBudget = b }(parseBudget)
		parseBudget = budget
		r, err := EngineImage(context.Background(), &fakeEngine{labels: labels, save: savedStream(t, layers, false, false)}, "web", src, Options{})
		if err != nil || !r.Equal {
			t.Fatalf("equal image (budget %d): %v %+v", budget, err, r)
		}
	}
	// The base layer again on top: etc/secret and the dpkg status are the base's again.
	r, err := EngineImage(context.Background(), &fakeEngine{labels: labels, save: savedStream(t, layers, true, false)}, "web", src, Options{})
	if err != nil || r.Differences[0] != (Difference{KindMode, "etc/secret", "0600", "0644"}) || r.Counts[KindSize] != 2 {
		t.Fatalf("a layer applied twice: %v %+v", err, r)
	}
	_, err = EngineImage(context.Background(), &fakeEngine{labels: labels, save: savedStream(t, layers, false, true)}, "web", src, Options{})
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("a diffID that does not match: %v", err)
	}
	t.Logf("error: %v", err)
}
