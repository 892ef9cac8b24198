package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/layer"
	"github.com/vm2image/vm2image/pkg/source"
)

// buildLayer diffs two directories and writes the layer to a file, returning its path.
func buildLayer(t testing.TB, oldDir, newDir string, dopts diff.Options, lopts layer.Options) (string, *diff.Result, layer.LayerStats) {
	t.Helper()
	ctx := context.Background()
	o, n := openDir(t, oldDir), openDir(t, newDir)
	res, err := diff.Trees(ctx, o, n, dopts)
	if err != nil {
		t.Fatalf("diff.Trees: %v", err)
	}
	f, err := os.CreateTemp(t.TempDir(), "layer-*.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := layer.Write(ctx, f, res, n, lopts)
	if err != nil {
		t.Fatalf("layer.Write: %v", err)
	}
	return f.Name(), res, st
}

func openDir(t testing.TB, dir string) source.Source {
	t.Helper()
	s, err := source.OpenDir(dir, "dir:"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// treeTar writes the whole tree at dir as a layer file (the base layer of a test image).
func treeTar(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "base-*.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fswalk.WriteTar(context.Background(), f, dir, fswalk.Options{Xattrs: true, Pseudo: fswalk.PseudoWalk}); err != nil {
		t.Fatalf("writing base layer: %v", err)
	}
	return f.Name()
}

// tarEntries lists a tar file's entry names in order.
func tarEntries(t testing.TB, file string) []*tar.Header {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var out []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading %s: %v", file, err)
		}
		out = append(out, h)
	}
}

type blob struct {
	digest string
	size   int64
}

// writeBlob copies a file (or bytes) into an OCI layout's blobs.
func writeBlob(t testing.TB, layout string, data []byte) blob {
	t.Helper()
	sum := sha256.Sum256(data)
	d := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(layout, "blobs/sha256", d), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return blob{"sha256:" + d, int64(len(data))}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func imageConfig(diffIDs []string) []byte {
	cfg := map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"/nothing"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	b, _ := json.Marshal(cfg)
	return b
}

// ociLayout writes an OCI image layout at dir with the layer files (uncompressed) as layers,
// tagged "test".
func ociLayout(t testing.TB, dir string, layers ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "blobs/sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	var descs []map[string]any
	var diffIDs []string
	for _, l := range layers {
		b := writeBlob(t, dir, readFile(t, l))
		descs = append(descs, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": b.digest, "size": b.size})
		diffIDs = append(diffIDs, b.digest)
	}
	cfg := writeBlob(t, dir, imageConfig(diffIDs))
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.digest, "size": cfg.size},
		"layers": descs,
	})
	mb := writeBlob(t, dir, man)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mb.digest, "size": mb.size,
		"annotations": map[string]string{"org.opencontainers.image.ref.name": "test"},
	}}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
}

// umociApply unpacks base + layer with umoci and returns the resulting root.
func umociApply(t testing.TB, base, layerFile string) string {
	t.Helper()
	dir := t.TempDir()
	layout, bundle := filepath.Join(dir, "oci"), filepath.Join(dir, "bundle")
	ociLayout(t, layout, base, layerFile)
	if out, err := exec.Command("umoci", "unpack", "--image", layout+":test", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	return filepath.Join(bundle, "rootfs")
}

// dockerApply loads base + layer into the Docker engine, exports a container of the image and
// unpacks it with GNU tar; it returns the unpacked root.
func dockerApply(t testing.TB, base, layerFile string) string {
	t.Helper()
	dir := t.TempDir()
	archive := filepath.Join(dir, "image.tar")
	tag := fmt.Sprintf("vm2image-layer-test:%d", os.Getpid())
	dockerArchive(t, archive, tag, base, layerFile)
	docker(t, "load", "-i", archive)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	id := strings.TrimSpace(docker(t, "create", tag))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	export := filepath.Join(dir, "export.tar")
	docker(t, "export", "-o", export, id)
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", export, "-C", root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x of the export: %v\n%s", err, out)
	}
	return root
}

func docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dockerArchive writes a `docker save` archive of an image with the given layer files.
func dockerArchive(t testing.TB, file, tag string, layers ...string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	var names, diffIDs []string
	for i, l := range layers {
		data := readFile(t, l)
		sum := sha256.Sum256(data)
		names = append(names, fmt.Sprintf("layer%d.tar", i))
		diffIDs = append(diffIDs, "sha256:"+hex.EncodeToString(sum[:]))
		add(names[i], data)
	}
	add("config.json", imageConfig(diffIDs))
	man, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{tag}, "Layers": names}})
	add("manifest.json", man)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// compareOpts say what a comparison of two trees leaves out.
type compareOpts struct {
	ignore      func(p string) bool // paths left out (and their subtrees)
	ignoreMTime func(p string) bool // paths whose mtimes may differ
	xattrs      func(name string) bool
	mtimeSecs   bool // compare mtimes in whole seconds (docker export drops the rest)
}

// snapshot walks a tree with digests and xattrs, keyed by path.
func snapshot(t testing.TB, dir string) map[string]fsmeta.Entry {
	t.Helper()
	m := map[string]fsmeta.Entry{}
	err := fswalk.Walk(context.Background(), dir, fswalk.Options{Xattrs: true, Digest: true, Pseudo: fswalk.PseudoWalk},
		func(e *fsmeta.Entry) error {
			if e.Type != fsmeta.TypeSocket {
				m[e.Path] = *e
			}
			return nil
		})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return m
}

// compareTrees reports every difference between the applied tree and the expected one: paths,
// types, modes, owners, digests, link targets, device numbers, xattrs, mtimes and hard-link
// groups. The roots themselves are not compared.
func compareTrees(t testing.TB, got, want string, co compareOpts) {
	t.Helper()
	g, w := snapshot(t, got), snapshot(t, want)
	keep := func(p string) bool {
		if p == "." {
			return false
		}
		for q := p; q != "."; q = parentDir(q) {
			if co.ignore != nil && co.ignore(q) {
				return false
			}
		}
		return true
	}
	var diffs []string
	for p, we := range w {
		if !keep(p) {
			continue
		}
		ge, ok := g[p]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("missing %q", p))
			continue
		}
		if d := entryDiff(&ge, &we, co, p); d != "" {
			diffs = append(diffs, fmt.Sprintf("%q: %s", p, d))
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok && keep(p) {
			diffs = append(diffs, fmt.Sprintf("extra %q", p))
		}
	}
	diffs = append(diffs, linkGroupDiffs(g, w, keep)...)
	slices.Sort(diffs)
	if len(diffs) > 0 {
		t.Errorf("%d differences between %s and %s:\n%s", len(diffs), got, want, strings.Join(diffs, "\n"))
	}
}

func entryDiff(g, w *fsmeta.Entry, co compareOpts, p string) string {
	var out []string
	check := func(what string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			out = append(out, fmt.Sprintf("%s %v, want %v", what, a, b))
		}
	}
	check("type", g.Type, w.Type)
	if w.Type != fsmeta.TypeSymlink {
		check("mode", fmt.Sprintf("%#o", g.Mode), fmt.Sprintf("%#o", w.Mode))
	}
	check("owner", [2]uint32{g.UID, g.GID}, [2]uint32{w.UID, w.GID})
	check("size", g.Size, w.Size)
	check("digest", g.Digest, w.Digest)
	check("target", g.Target, w.Target)
	check("device", [2]uint32{g.DevMajor, g.DevMinor}, [2]uint32{w.DevMajor, w.DevMinor})
	check("xattrs", xattrString(g.Xattrs, co.xattrs), xattrString(w.Xattrs, co.xattrs))
	switch {
	case co.ignoreMTime != nil && co.ignoreMTime(p):
	case co.mtimeSecs:
		check("mtime (s)", g.MTime/1e9, w.MTime/1e9)
	default:
		check("mtime", g.MTime, w.MTime)
	}
	return strings.Join(out, "; ")
}

func xattrString(m map[string][]byte, keep func(string) bool) string {
	var out []string
	for k, v := range m {
		if keep == nil || keep(k) {
			out = append(out, k+"="+hex.EncodeToString(v))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// linkGroupDiffs compares which names share an inode.
func linkGroupDiffs(g, w map[string]fsmeta.Entry, keep func(string) bool) []string {
	groups := func(m map[string]fsmeta.Entry) map[string]string {
		byIno := map[[2]uint64][]string{}
		for p, e := range m {
			if e.Type == fsmeta.TypeRegular && e.Nlink > 1 && keep(p) {
				k := [2]uint64{e.Dev, e.Ino}
				byIno[k] = append(byIno[k], p)
			}
		}
		out := map[string]string{}
		for _, names := range byIno {
			if len(names) < 2 { // its other names lie outside the tree: a plain file in any copy
				continue
			}
			slices.Sort(names)
			for _, n := range names {
				out[n] = strings.Join(names, " | ")
			}
		}
		return out
	}
	gg, wg := groups(g), groups(w)
	var out []string
	for p := range w {
		if keep(p) && w[p].Type == fsmeta.TypeRegular && gg[p] != wg[p] {
			out = append(out, fmt.Sprintf("%q: hard links [%s], want [%s]", p, gg[p], wg[p]))
		}
	}
	return out
}

func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}
