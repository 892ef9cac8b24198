package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/client"
	"github.com/vm2image/vm2image/internal/ctxio"
)

// LoadOptions tell LoadNew which images the engine may already hold layers of.
type LoadOptions struct {
	// Known are engine references (tags or IDs) whose layers img may share: the base, the image
	// a previous conversion loaded under the same tag, Pin. Absent ones are ignored.
	Known []string
	// Pin, when set, tags the loaded image too, so that the layers it shares with later images
	// stay in the engine (and are found through Known) after its own tag has moved on.
	Pin string
}

// LoadNew loads img into the engine like Load, but sends only the layer blobs the engine lacks:
// the Docker engine's load (API 1.41, graph-driver image store) skips every layer whose chain it
// already holds without opening its file, so the archive names those layers in its manifest and
// leaves their blobs out. The longest prefix of img's layers that one of opts.Known holds is
// left out. When the engine refuses that archive (the known image was removed meanwhile), the
// whole image is sent. It returns how many layers were left out.
func LoadNew(ctx context.Context, img v1.Image, tag string, engine EngineClient, opts LoadOptions) (int, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return 0, fmt.Errorf("reading image config: %w", err)
	}
	have := engineHas(ctx, engine, cfg.RootFS.DiffIDs, opts.Known)
	if have > 0 {
		if err := loadStream(ctx, engine, func(w io.Writer) error { return writeArchiveSkipping(ctx, w, img, tag, have) }); err == nil {
			pin(ctx, engine, tag, opts.Pin)
			return have, nil
		}
	}
	if err := Load(ctx, img, tag, engine); err != nil {
		return 0, err
	}
	pin(ctx, engine, tag, opts.Pin)
	return 0, nil
}

// engineHas is the length of the longest prefix of diffIDs that one of the known images holds.
func engineHas(ctx context.Context, engine EngineClient, diffIDs []v1.Hash, known []string) int {
	best := 0
	for _, ref := range known {
		if ref == "" {
			continue
		}
		res, err := engine.ImageInspect(ctx, ref)
		if err != nil {
			continue
		}
		n := 0
		for n < len(diffIDs) && n < len(res.RootFS.Layers) && res.RootFS.Layers[n] == diffIDs[n].String() {
			n++
		}
		best = max(best, n)
	}
	return best
}

// pin tags tag's image as name too, when the engine client can tag.
func pin(ctx context.Context, engine EngineClient, tag, name string) {
	t, ok := engine.(interface {
		ImageTag(context.Context, client.ImageTagOptions) (client.ImageTagResult, error)
	})
	if ok && tag != "" && name != "" {
		_, _ = t.ImageTag(ctx, client.ImageTagOptions{Source: tag, Target: name})
	}
}

// loadStream sends what write writes to the engine's load and returns the engine's error.
func loadStream(ctx context.Context, engine EngineClient, write func(io.Writer) error) error {
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err)
		werr <- err
	}()
	res, err := engine.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		pr.CloseWithError(err)
		<-werr
		return fmt.Errorf("loading image into the docker engine: %w", err)
	}
	lerr := readJSONStream(res)
	res.Close()
	pr.CloseWithError(errors.New("engine stopped reading"))
	if err := <-werr; err != nil && lerr == nil {
		return fmt.Errorf("loading image into the docker engine: writing archive: %w", err)
	}
	if lerr != nil {
		return fmt.Errorf("loading image into the docker engine: %w", lerr)
	}
	return nil
}

// writeArchiveSkipping writes img as a docker-archive (the layout tarball.Write uses) whose
// first skip layers are named in the manifest but have no blob.
func writeArchiveSkipping(ctx context.Context, w io.Writer, img v1.Image, tag string, skip int) error {
	ref, err := archiveRef(img, tag)
	if err != nil {
		return err
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := writeEntry(tw, cfgName.String(), int64(len(rawCfg)), func(w io.Writer) error { _, err := w.Write(rawCfg); return err }); err != nil {
		return err
	}
	entry := struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{Config: cfgName.String()}
	if tag != "" {
		entry.RepoTags = []string{ref.String()}
	}
	for k, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		name := d.Hex + ".tar.gz"
		entry.Layers = append(entry.Layers, name)
		if k < skip {
			continue
		}
		if err := writeLayerEntry(ctx, tw, name, l); err != nil {
			return err
		}
	}
	m, err := json.Marshal([]any{entry})
	if err != nil {
		return err
	}
	if err := writeEntry(tw, "manifest.json", int64(len(m)), func(w io.Writer) error { _, err := w.Write(m); return err }); err != nil {
		return err
	}
	return tw.Close()
}

func writeLayerEntry(ctx context.Context, tw *tar.Writer, name string, l v1.Layer) error {
	size, err := l.Size()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeEntry(tw, name, size, func(w io.Writer) error {
		n, err := ctxio.Copy(ctx, w, rc)
		if err == nil && n != size {
			err = fmt.Errorf("layer %s: %d bytes, want %d", name, n, size)
		}
		return err
	})
}

func writeEntry(tw *tar.Writer, name string, size int64, body func(io.Writer) error) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o644, Typeflag: tar.TypeReg,
		ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	return body(tw)
}
