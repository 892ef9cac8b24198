package experiment

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/internal/ctxio"
	"github.com/vm2image/vm2image/internal/tailbuf"
	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/image"
)

// tarLayer tars rsync's output as the 2014 pipeline's one diff layer and measures it, and the
// layer the removal of the deleted paths makes (one whiteout per topmost deleted path).
func tarLayer(ctx context.Context, out, layer string, deleted []string, b *BaselineReport) error {
	if err := command(ctx, "tar", "-C", out, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-cf", layer, "."); err != nil {
		return err
	}
	f, err := os.Open(layer)
	if err != nil {
		return err
	}
	defer f.Close()
	zc := &countWriter{}
	zw, err := newCompressor(zc, "gzip")
	if err != nil {
		return err
	}
	n, err := ctxio.Copy(ctx, zw, f)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	b.LayerBytes, b.LayerCompressed = n, zc.n
	if err != nil {
		return err
	}
	b.RemoveLayerCompressed, err = whiteoutLayerSize(deleted)
	return err
}

// topmost keeps the deleted paths none of whose parents is deleted too.
func topmost(deleted []string) []string {
	set := map[string]bool{}
	for _, p := range deleted {
		set[p] = true
	}
	var out []string
	for _, p := range deleted {
		keep := true
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if set[d] {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// whiteoutLayerSize is the compressed size of a layer of whiteouts for the deleted paths.
func whiteoutLayerSize(deleted []string) (int64, error) {
	zc := &countWriter{}
	zw, err := newCompressor(zc, "gzip")
	if err != nil {
		return 0, err
	}
	tw := tar.NewWriter(zw)
	for _, p := range topmost(deleted) {
		wh := path.Join(path.Dir(p), archive.WhiteoutPrefix+path.Base(p))
		if err := tw.WriteHeader(&tar.Header{Name: wh, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(0, 0)}); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	err = zw.Close()
	return zc.n, err
}

// build2014 builds the 2014 pipeline's image in the Docker engine: FROM the base (with the
// packages layer, loaded into the engine), ADD layer.tar, RUN rm of the deleted paths.
func (r *runner) build2014(ctx context.Context, ps *preparedSource, c Cell, baseImg v1.Image, work string, deleted []string, b *BaselineReport) error {
	if !r.build {
		b.BuildSkipped = "baselines: build is false"
		return nil
	}
	if err := exec.CommandContext(ctx, "docker", "version").Run(); err != nil {
		b.BuildSkipped = "no Docker engine answers"
		return nil
	}
	from, cleanup, err := r.fromImage(ctx, ps, baseImg, work, b)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return err
	}
	dir := filepath.Join(work, "build")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(work, "layer.tar"), filepath.Join(dir, "layer.tar")); err != nil {
		return err
	}
	df := "FROM " + from + "\nADD layer.tar /\n"
	if len(deleted) > 0 {
		var sh strings.Builder
		for _, p := range topmost(deleted) {
			fmt.Fprintf(&sh, "rm -rf -- %s\n", shellQuote("/"+p))
		}
		if err := os.WriteFile(filepath.Join(dir, "rm.sh"), []byte(sh.String()), 0o644); err != nil {
			return err
		}
		df += "COPY rm.sh /.vm2image-rm.sh\nRUN sh /.vm2image-rm.sh && rm -f /.vm2image-rm.sh\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	tag := "vm2image-experiment/pipeline-2014:" + strings.ToLower(c.Source) + "-" + pkgWord(c.Packages)
	cmd := exec.CommandContext(ctx, "docker", "build", "--no-cache", "--rm", "-q", "-t", tag, dir)
	cmd.Env = append(cmd.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build: %w: %s", err, tailbuf.Of(out))
	}
	defer exec.Command("docker", "rmi", "-f", tag).Run()
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "-f", "{{.Size}}", tag).Output()
	if err != nil {
		return fmt.Errorf("inspecting the built image: %w", err)
	}
	b.BuildImageBytes, err = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	return err
}

// fromImage returns the engine image the build starts FROM: the base when it is in the engine
// and the cell has no packages layer, else the base (and packages layer) loaded for the build.
func (r *runner) fromImage(ctx context.Context, ps *preparedSource, baseImg v1.Image, work string, b *BaselineReport) (string, func(), error) {
	if ref, ok := strings.CutPrefix(b.BaseRef, image.TransportDaemon+":"); ok && b.PackagesLayer == "" {
		return ref, nil, nil
	}
	img := baseImg
	if b.PackagesLayer != "" {
		a, err := image.Assemble(ctx, baseImg, []image.LayerFile{{Path: b.PackagesLayer, Comment: "packages"}},
			image.ConfigSpec{}, image.AssembleOptions{WorkDir: filepath.Join(work, "blobs")})
		if err != nil {
			return "", nil, fmt.Errorf("assembling base+packages: %w", err)
		}
		if c, ok := a.(io.Closer); ok {
			defer c.Close()
		}
		img = a
	}
	engine, err := image.NewEngine(ctx)
	if err != nil {
		return "", nil, err
	}
	tag := "vm2image-experiment/from-2014:" + strings.ToLower(ps.spec.Name)
	if err := image.Load(ctx, img, tag, engine); err != nil {
		return "", nil, fmt.Errorf("loading base+packages into the engine: %w", err)
	}
	return tag, func() { _ = exec.Command("docker", "rmi", "-f", tag).Run() }, nil
}
