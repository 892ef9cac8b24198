package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/services"
)

// Labels vm2image sets on the images it writes. LabelExcludes holds the conversion's excludes
// as a JSON list: verify reads it to compare under the same excludes.
const (
	LabelSource       = "org.vm2image.source"
	LabelHost         = "org.vm2image.source.hostname"
	LabelOS           = "org.vm2image.source.os"
	LabelAgentVersion = "org.vm2image.agent.version"
	LabelCreated      = "org.vm2image.created"
	LabelStrategy     = "org.vm2image.strategy"
	LabelExcludes     = "org.vm2image.excludes"
	LabelVersion      = "org.vm2image.version"
)

// Version is the converter's version, written in the labels.
var Version = "0.1.0-dev"

func (r *run) imageConfig() image.ConfigSpec {
	excl, _ := json.Marshal(r.excludes())
	cfg := image.ConfigSpec{
		Env:        []string{"PATH=" + services.DefaultPath},
		WorkingDir: "/",
		Entrypoint: []string{services.InitPath},
		StopSignal: "SIGTERM",
		Created:    r.opts.Created,
		Labels: map[string]string{
			LabelSource: r.opts.Source, LabelHost: r.info.Hostname, LabelOS: r.report.OS,
			LabelAgentVersion: r.info.AgentVersion, LabelCreated: r.opts.Created.Format("2006-01-02T15:04:05Z"),
			LabelStrategy: string(r.opts.Strategy), LabelExcludes: string(excl), LabelVersion: Version,
		},
	}
	for _, p := range r.services.PublishedPorts() {
		cfg.ExposedPorts = append(cfg.ExposedPorts, fmt.Sprintf("%d/%s", p.Port, p.Proto))
	}
	return cfg
}

// tag is the image's name: the one given, else vm2image/HOSTNAME:latest.
func (r *run) tag() string {
	if r.opts.Tag != "" {
		return r.opts.Tag
	}
	host := strings.ToLower(r.info.Hostname)
	host = regexp.MustCompile(`[^a-z0-9._-]+`).ReplaceAllString(host, "-")
	host = strings.Trim(host, ".-_")
	if host == "" {
		host = "vm"
	}
	return "vm2image/" + host + ":latest"
}

func (r *run) assembleAndWrite(ctx context.Context) error {
	img, err := image.Assemble(ctx, r.base.Image, r.layers, r.imageConfig(), image.AssembleOptions{
		Compression: r.opts.Compression, WorkDir: filepath.Join(r.work, "blobs"),
	})
	if err != nil {
		return fmt.Errorf("assembling the image: %w", err)
	}
	if err := r.describe(img); err != nil {
		return err
	}
	tag := r.tag()
	ir := &r.report.Image
	ir.Tag, ir.Format = tag, r.opts.Format
	if r.opts.Output != "" {
		ir.Output = r.opts.Output
		if r.opts.Format == FormatOCI {
			err = image.WriteOCILayout(ctx, r.opts.Output, img, layoutTag(tag))
		} else {
			err = image.WriteDockerArchive(ctx, r.opts.Output, img, tag)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", r.opts.Output, err)
		}
		if ir.ContextFiles, err = r.writeContext(r.opts.Output+".context", tag); err != nil {
			return err
		}
	}
	if r.opts.Load {
		engine, err := image.NewEngine(ctx)
		if err != nil {
			return err
		}
		if err := image.Load(ctx, img, tag, engine); err != nil {
			return fmt.Errorf("loading into the Docker engine: %w", err)
		}
		ir.Loaded = true
	}
	if r.opts.Push != "" {
		if err := image.Push(ctx, r.opts.Push, img, image.PushOptions{Insecure: r.opts.Insecure}); err != nil {
			return fmt.Errorf("pushing to %s: %w", r.opts.Push, err)
		}
		ir.Pushed = r.opts.Push
	}
	return nil
}

// describe fills the report's image figures.
func (r *run) describe(img v1.Image) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	ir := &r.report.Image
	ir.Digest = d.String()
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	ir.Bytes = m.Config.Size
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	nBase := len(layers) - len(r.roles)
	for i, l := range layers {
		role := "base"
		if i >= nBase {
			role = r.roles[i-nBase]
		}
		ls := LayerSizes{Role: role}
		dg, _ := l.Digest()
		di, _ := l.DiffID()
		ls.Digest, ls.DiffID = dg.String(), di.String()
		if ls.Compressed, err = l.Size(); err != nil {
			return err
		}
		ir.Bytes += ls.Compressed
		ir.Layers = append(ir.Layers, ls)
	}
	return nil
}

// writeContext writes, beside the image, an equivalent Dockerfile, services.yaml and
// compose.yaml into dir (replaced as a whole, atomically).
func (r *run) writeContext(dir, tag string) ([]string, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	var layerNames []string
	for i, role := range r.roles {
		if role != "runtime" {
			layerNames = append(layerNames, fmt.Sprintf("%d-%s.tar", i+1, role))
		}
	}
	df := services.Dockerfile(r.report.Base.Ref, layerNames, r.services, services.ImageConfig{
		Env: []string{"PATH=" + services.DefaultPath}, Labels: r.imageConfig().Labels,
	})
	compose, err := services.Compose(tag, r.services)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{"Dockerfile": []byte(df), "services.yaml": r.servicesYAML, "compose.yaml": compose}
	var names []string
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return nil, err
		}
		names = append(names, filepath.Join(dir, name))
	}
	sort.Strings(names)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return names, nil
}

// layoutTag is the name an OCI layout knows the image by: the tag of name:tag ("latest"), as
// skopeo's oci:DIR:TAG and umoci's DIR:TAG expect.
func layoutTag(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "latest"
}
