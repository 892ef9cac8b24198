package image

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/vm2image/vm2image/internal/testenv"
)

// assembledImage stacks a packages layer (a new file) and a diff layer (a whiteout of
// /etc/issue.net and another file) over the engine's bookworm base.
func assembledImage(t *testing.T, c Compression) (v1.Image, []string) {
	t.Helper()
	base := engineBase(t)
	dir := t.TempDir()
	tars := []string{
		writeTarFile(t, dir, "packages.tar", []tarEntry{
			{name: "opt/vm2image/", typ: tar.TypeDir},
			{name: "opt/vm2image/hello.txt", body: "hello from layer 1\n"},
		}),
		writeTarFile(t, dir, "diff.tar", []tarEntry{
			{name: "etc/.wh.issue.net"},
			{name: "opt/vm2image/second.txt", body: "second\n", uid: 65534, gid: 65534},
		}),
	}
	spec := ConfigSpec{
		Env:          []string{"FOO=bar"},
		WorkingDir:   "/opt/vm2image",
		User:         "nobody",
		ExposedPorts: []string{"80/tcp", "53/udp"},
		Entrypoint:   []string{"/usr/bin/env"},
		Labels:       map[string]string{"vm2image.source": "test-vm"},
		Created:      fixedTime,
	}
	layers := []LayerFile{{Path: tars[0], Comment: "vm2image: packages"}, {Path: tars[1], Comment: "vm2image: vm diff"}}
	start := time.Now()
	img, err := Assemble(testCtx(t), base.Image, layers, spec, AssembleOptions{Compression: c, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("assembled in %v", time.Since(start))
	return img, tars
}

func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, l := range m.Layers {
		ds = append(ds, l.Digest.String())
	}
	return ds
}

func TestAssembleLayersHashedInOnePass(t *testing.T) {
	img, tars := assembledImage(t, Gzip)
	layers, _ := img.Layers()
	news := layers[len(layers)-2:]
	for k, l := range news {
		raw, _ := os.ReadFile(tars[k])
		if d, _ := l.DiffID(); d != sha(raw) {
			t.Errorf("layer %d: diffID %s, sha256 of the tar %s", k, d, sha(raw))
		}
		rc, _ := l.Compressed()
		blob, _ := io.ReadAll(rc)
		rc.Close()
		if d, _ := l.Digest(); d != sha(blob) {
			t.Errorf("layer %d: digest %s, sha256 of the blob %s", k, d, sha(blob))
		}
	}
	// The same inputs give the same image.
	again, _ := assembledImage(t, Gzip)
	if a, b := mustDigest(t, img), mustDigest(t, again); a != b {
		t.Errorf("assembled twice: %s and %s", a, b)
	}
	// The base layer keeps the blob the engine's resolution stored.
	baseLayers, _ := engineBase(t).Image.Layers()
	bd, _ := baseLayers[0].Digest()
	if d, _ := layers[0].Digest(); d != bd {
		t.Errorf("base layer %s became %s", bd, d)
	}
}

func TestAssembledImageInDocker(t *testing.T) {
	img, _ := assembledImage(t, Gzip)
	const tag = "vm2image-test/assembled:archive"
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	file := filepath.Join(t.TempDir(), "image.tar")
	start := time.Now()
	if err := WriteDockerArchive(testCtx(t), file, img, tag); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote docker archive in %v", time.Since(start))
	if out := run(t, "docker", "load", "-i", file); !strings.Contains(out, tag) {
		t.Fatalf("docker load: %s", out)
	}
	if out := run(t, "docker", "run", "--rm", tag, "cat", "/opt/vm2image/hello.txt"); out != "hello from layer 1\n" {
		t.Errorf("cat printed %q", out)
	}
	out := run(t, "docker", "run", "--rm", tag, "sh", "-c",
		`test -e /etc/issue.net && echo present || echo gone; test -e /etc/debian_version && echo base; echo $FOO; pwd; id -un`)
	if out != "gone\nbase\nbar\n/opt/vm2image\nnobody\n" {
		t.Errorf("in the container: %q", out)
	}
	var cfg struct {
		Env          []string
		WorkingDir   string
		User         string
		ExposedPorts map[string]struct{}
		Entrypoint   []string
		Labels       map[string]string
	}
	if err := json.Unmarshal([]byte(run(t, "docker", "image", "inspect", "-f", "{{json .Config}}", tag)), &cfg); err != nil {
		t.Fatal(err)
	}
	_, tcp := cfg.ExposedPorts["80/tcp"]
	_, udp := cfg.ExposedPorts["53/udp"]
	if !slices.Contains(cfg.Env, "FOO=bar") || cfg.WorkingDir != "/opt/vm2image" || cfg.User != "nobody" || !tcp || !udp ||
		!slices.Equal(cfg.Entrypoint, []string{"/usr/bin/env"}) || cfg.Labels["vm2image.source"] != "test-vm" {
		t.Errorf("docker inspect shows %+v", cfg)
	}
	history := run(t, "docker", "history", "--no-trunc", "--format", "{{.Comment}}", tag)
	if !strings.Contains(history, "vm2image: packages") || !strings.Contains(history, "vm2image: vm diff") {
		t.Errorf("history comments: %q", history)
	}
}

func TestAssembledImageLoadedByClient(t *testing.T) {
	img, _ := assembledImage(t, Gzip)
	const tag = "vm2image-test/assembled:load"
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	start := time.Now()
	if err := Load(testCtx(t), img, tag, requireEngine(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded through the engine API in %v", time.Since(start))
	id, _ := img.ConfigName()
	if got := strings.TrimSpace(run(t, "docker", "image", "inspect", "-f", "{{.Id}}", tag)); got != id.String() {
		t.Errorf("engine has image %s, ours is %s", got, id)
	}
	if out := run(t, "docker", "run", "--rm", tag, "cat", "/opt/vm2image/second.txt"); out != "second\n" {
		t.Errorf("cat printed %q", out)
	}
	// The engine refuses a broken archive: Load reports its error.
	if err := Load(testCtx(t), brokenImage{img}, tag, requireEngine(t)); err == nil {
		t.Error("Load of an image whose layer cannot be read succeeded")
	}
}

// brokenImage fails to read its last layer.
type brokenImage struct{ v1.Image }

func (b brokenImage) Layers() ([]v1.Layer, error) {
	ls, err := b.Image.Layers()
	ls[len(ls)-1] = brokenLayer{ls[len(ls)-1]}
	return ls, err
}

type brokenLayer struct{ v1.Layer }

func (brokenLayer) Compressed() (io.ReadCloser, error) { return nil, os.ErrPermission }

func TestAssembledImageAsOCILayout(t *testing.T) {
	testenv.RequireCommands(t, "skopeo", "umoci")
	img, _ := assembledImage(t, Gzip)
	dir := filepath.Join(t.TempDir(), "layout")
	start := time.Now()
	if err := WriteOCILayout(testCtx(t), dir, img, "v1"); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote OCI layout in %v", time.Since(start))
	var info struct{ Layers []string }
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "oci:"+dir+":v1")), &info); err != nil {
		t.Fatal(err)
	}
	if want := layerDigests(t, img); !slices.Equal(info.Layers, want) {
		t.Errorf("skopeo sees layers %v, want %v", info.Layers, want)
	}
	bundle := filepath.Join(scratchDir(t), "bundle")
	run(t, "umoci", "unpack", "--image", dir+":v1", bundle)
	ours := scratchDir(t)
	if err := Unpack(testCtx(t), img, ours); err != nil {
		t.Fatal(err)
	}
	want := treeManifest(t, ours)
	if want["opt/vm2image/hello.txt"] == "" || want["etc/issue.net"] != "" {
		t.Fatalf("our unpack lacks the new file or keeps the whited-out one")
	}
	compareTrees(t, want, treeManifest(t, filepath.Join(bundle, "rootfs")), "umoci's rootfs")

	// Writing again replaces the layout atomically; a directory that is not a layout is refused.
	if err := WriteOCILayout(testCtx(t), dir, img, "v2"); err != nil {
		t.Fatal(err)
	}
	run(t, "skopeo", "inspect", "oci:"+dir+":v2")
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("left beside the layout: %v", entries)
	}
	notLayout := t.TempDir()
	os.WriteFile(filepath.Join(notLayout, "precious"), []byte("x"), 0o644)
	if err := WriteOCILayout(testCtx(t), notLayout, img, "v1"); err == nil {
		t.Error("WriteOCILayout replaced a directory that is not a layout")
	}
}

func TestAssembledImagePushed(t *testing.T) {
	testenv.RequireCommands(t, "skopeo")
	img, _ := assembledImage(t, Gzip)
	addr := startRegistry(t)
	ref := addr + "/vm2image/assembled:v1"
	var progressed bool
	start := time.Now()
	res, err := Push(testCtx(t), ref, img, PushOptions{Insecure: true, Progress: func(done, total int64) { progressed = true }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed in %v", time.Since(start))
	n := len(layerDigests(t, img))
	if res.LayersNew != n || res.LayersExisting != 0 || res.BytesNew == 0 {
		t.Errorf("first push: %+v, want all %d layers new", res, n)
	}
	// The same image under another tag of the repository: every layer is there already.
	res, err = Push(testCtx(t), addr+"/vm2image/assembled:v2", img, PushOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.LayersNew != 0 || res.LayersExisting != n || res.BytesExisting == 0 {
		t.Errorf("second push: %+v, want all %d layers existing", res, n)
	}
	var info struct {
		Digest string
		Layers []string
	}
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+ref)), &info); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if info.Digest != d.String() || !slices.Equal(info.Layers, layerDigests(t, img)) || !progressed {
		t.Errorf("registry has %s %v, ours is %s %v (progress %v)", info.Digest, info.Layers, d, layerDigests(t, img), progressed)
	}
}

func TestAssembledZstdImage(t *testing.T) {
	testenv.RequireCommands(t, "skopeo")
	img, tars := assembledImage(t, Zstd)
	dir := filepath.Join(t.TempDir(), "layout")
	if err := WriteOCILayout(testCtx(t), dir, img, "zstd"); err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "--raw", "oci:"+dir+":zstd")), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 3 || m.Layers[0].MediaType != types.OCILayer || m.Layers[2].MediaType != types.OCILayerZStd {
		t.Errorf("manifest layers %+v", m.Layers)
	}
	layers, _ := img.Layers()
	rc, err := layers[2].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	back, _ := io.ReadAll(rc)
	rc.Close()
	if raw, _ := os.ReadFile(tars[1]); string(back) != string(raw) {
		t.Error("the zstd layer does not decompress to its tar")
	}
}
