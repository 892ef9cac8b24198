package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	cerrdefs "github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/vm2image/vm2image/internal/ctxio"
	"github.com/vm2image/vm2image/internal/engine"
)

// EngineClient is the part of the Docker engine's API this package uses. *client.Client of
// github.com/moby/moby/client implements it; NewEngine makes one.
type EngineClient interface {
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageSave(ctx context.Context, images []string, opts ...client.ImageSaveOption) (client.ImageSaveResult, error)
	ImageLoad(ctx context.Context, input io.Reader, opts ...client.ImageLoadOption) (client.ImageLoadResult, error)
}

var _ EngineClient = (*client.Client)(nil)

// NewEngine connects to the Docker engine DOCKER_HOST names (the local socket by default) and
// negotiates the API version down to the engine's (1.41 for Docker 20.10). The client it returns
// is also an io.Closer.
func NewEngine(ctx context.Context) (EngineClient, error) {
	c, err := engine.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// engineHost names the engine e talks to, when it can tell.
func engineHost(e EngineClient) string {
	if h, ok := e.(interface{ DaemonHost() string }); ok {
		return h.DaemonHost()
	}
	return ""
}

// fromEngine saves ref from the engine into a temporary archive in st and reads it from there.
func fromEngine(ctx context.Context, e EngineClient, ref string, st blobStore, p v1.Platform) (_ v1.Image, err error) {
	res, err := e.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("no such image %s", ref)
		}
		return nil, fmt.Errorf("inspecting %s: %w", ref, err)
	}
	if (res.Os != "" && res.Os != p.OS) || (res.Architecture != "" && res.Architecture != p.Architecture) {
		return nil, fmt.Errorf("image is for %s/%s, want %s/%s", res.Os, res.Architecture, p.OS, p.Architecture)
	}
	// Seen before: the config the engine names by ID and every layer are in the store already,
	// so the image is read from there without a `docker save`.
	if img, ok := st.engineImage(res.ID); ok {
		return img, nil
	}
	tmp, err := st.tempFile("save-*.tar")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// Save by ID, so a tag moved meanwhile cannot change what we get.
	rc, err := e.ImageSave(ctx, []string{res.ID})
	if err != nil {
		return nil, fmt.Errorf("saving %s from the engine: %w", ref, err)
	}
	_, err = ctxio.Copy(ctx, tmp, rc)
	rc.Close()
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("saving %s from the engine: %w", ref, err)
	}
	img, err := readArchive(ctx, tmp.Name(), "", st)
	if err != nil {
		return nil, fmt.Errorf("reading %s saved from the engine: %w", ref, err)
	}
	st.rememberEngineImage(img)
	return img, nil
}

// Load streams img as a docker-archive into the engine, tagged tag (untagged when empty), and
// returns the engine's error if the load fails.
func Load(ctx context.Context, img v1.Image, tag string, engine EngineClient) error {
	ref, err := archiveRef(img, tag)
	if err != nil {
		return err
	}
	return loadStream(ctx, engine, func(w io.Writer) error { return tarball.Write(ref, img, w) })
}

// readJSONStream reads an engine's progress stream and returns the error it reports.
func readJSONStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading engine response: %w", err)
		}
		if m.Error != nil {
			return m.Error
		}
	}
}
