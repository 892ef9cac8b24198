package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// bigTar is a tar of about n bytes, half compressible text and half random.
func bigTar(t testing.TB, n int) []byte {
	rnd := rand.New(rand.NewSource(1))
	random := make([]byte, n/2)
	rnd.Read(random)
	text := bytes.Repeat([]byte("vm2image layer text line\n"), n/2/25)
	return buildTar(t, []tarEntry{
		{name: "data/", typ: tar.TypeDir},
		{name: "data/random.bin", body: string(random)},
		{name: "data/text.txt", body: string(text)},
	})
}

func TestCompressOnePass(t *testing.T) {
	raw := bigTar(t, 6<<20) // several pgzip blocks
	for _, c := range []Compression{Gzip, Zstd} {
		t.Run(string(c), func(t *testing.T) {
			st := blobStore{dir: t.TempDir()}
			l, err := st.compress(context.Background(), bytes.NewReader(raw), c, 0)
			if err != nil {
				t.Fatal(err)
			}
			blob, err := os.ReadFile(l.path)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := l.DiffID(); got != sha(raw) {
				t.Errorf("diffID %s, sha256 of the tar is %s", got, sha(raw))
			}
			if got, _ := l.Digest(); got != sha(blob) {
				t.Errorf("digest %s, sha256 of the blob is %s", got, sha(blob))
			}
			if size, _ := l.Size(); size != int64(len(blob)) || l.meta.UncompressedSize != int64(len(raw)) {
				t.Errorf("sizes %d/%d, want %d/%d", size, l.meta.UncompressedSize, len(blob), len(raw))
			}
			if l.path != st.blobPath(sha(blob)) {
				t.Errorf("blob at %s, not named by its digest", l.path)
			}
			// Decompress with an independent implementation.
			var dec io.Reader
			if c == Gzip {
				if dec, err = gzip.NewReader(bytes.NewReader(blob)); err != nil {
					t.Fatal(err)
				}
			} else {
				zr, err := zstd.NewReader(bytes.NewReader(blob))
				if err != nil {
					t.Fatal(err)
				}
				defer zr.Close()
				dec = zr
			}
			back, err := io.ReadAll(dec)
			if err != nil || !bytes.Equal(back, raw) {
				t.Fatalf("decompressed blob differs from the tar (err %v)", err)
			}
			// The store finds it again by diffID, and nothing is left in tmp.
			if again, ok := st.lookup(sha(raw), c); !ok || again.meta != l.meta {
				t.Errorf("lookup = %+v, %v", again, ok)
			}
			if left, _ := os.ReadDir(st.dir + "/tmp"); len(left) != 0 {
				t.Errorf("temp files left: %v", left)
			}
		})
	}
}

func TestCompressReproducible(t *testing.T) {
	raw := bigTar(t, 3<<20)
	a, err := blobStore{dir: t.TempDir()}.compress(context.Background(), bytes.NewReader(raw), Gzip, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blobStore{dir: t.TempDir()}.compress(context.Background(), bytes.NewReader(raw), Gzip, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.meta != b.meta {
		t.Errorf("same tar compressed twice: %+v vs %+v", a.meta, b.meta)
	}
}

func TestIngestKeepsBlob(t *testing.T) {
	raw := bigTar(t, 1<<20)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	st := blobStore{dir: t.TempDir()}
	l, err := st.ingest(context.Background(), bytes.NewReader(gz.Bytes()), sha(gz.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if l.meta.Digest != sha(gz.Bytes()) || l.meta.DiffID != sha(raw) || l.meta.Compression != Gzip {
		t.Errorf("meta = %+v", l.meta)
	}
	stored, _ := os.ReadFile(l.path)
	if !bytes.Equal(stored, gz.Bytes()) {
		t.Error("ingest changed the blob")
	}
	if _, err := st.ingest(context.Background(), bytes.NewReader(gz.Bytes()), sha([]byte("other"))); err == nil {
		t.Error("ingest accepted a blob whose digest differs from the expected one")
	}
	if _, err := st.ingest(context.Background(), bytes.NewReader(raw), v1.Hash{}); err == nil {
		t.Error("ingest accepted an uncompressed blob")
	}
}

// smallBase is a one-layer Docker image in st, like an imported root.
func smallBase(t *testing.T, st blobStore) v1.Image {
	t.Helper()
	raw := buildTar(t, []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/issue.net", body: "Debian GNU/Linux 12\n"},
		{name: "etc/hostname", body: "base\n"},
	})
	l, err := st.compress(context.Background(), bytes.NewReader(raw), Gzip, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := v1.ConfigFile{Architecture: "amd64", OS: "linux",
		Config:  v1.Config{Env: []string{"PATH=/usr/bin:/bin", "LANG=C"}, Cmd: []string{"/bin/sh"}, Labels: map[string]string{"base": "yes"}},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{l.meta.DiffID}},
		History: []v1.History{{CreatedBy: "import"}}}
	b, _ := json.Marshal(cfg)
	img, err := newStoredImage(b, []*fileLayer{l}, types.DockerManifestSchema2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func testLayers(t *testing.T, dir string) []LayerFile {
	return []LayerFile{
		{Path: writeTarFile(t, dir, "packages.tar", []tarEntry{
			{name: "opt/", typ: tar.TypeDir},
			{name: "opt/hello.txt", body: "hello from layer 1\n"},
		}), Comment: "vm2image: packages"},
		{Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(buildTar(t, []tarEntry{{name: "etc/.wh.issue.net"}}))), nil
		}, Comment: "vm2image: vm diff"},
	}
}

var fixedTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func testSpec() ConfigSpec {
	return ConfigSpec{
		Env:          []string{"LANG=C.UTF-8", "FOO=bar"},
		WorkingDir:   "/opt",
		User:         "nobody",
		ExposedPorts: []string{"80/tcp", "53/udp", "8080"},
		Entrypoint:   []string{"/usr/bin/env"},
		Labels:       map[string]string{"vm2image.source": "web1", "vm2image.strategy": "checksum"},
		StopSignal:   "SIGTERM",
		Author:       "vm2image test",
		Created:      fixedTime,
	}
}

func TestAssembleConfigAndHistory(t *testing.T) {
	ctx := context.Background()
	base := smallBase(t, blobStore{dir: t.TempDir()})
	img, err := Assemble(ctx, base, testLayers(t, t.TempDir()), testSpec(), AssembleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.(io.Closer).Close()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if !slices.Equal(c.Env, []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "FOO=bar"}) {
		t.Errorf("Env = %q", c.Env)
	}
	if c.WorkingDir != "/opt" || c.User != "nobody" || c.StopSignal != "SIGTERM" || cfg.Author != "vm2image test" {
		t.Errorf("config = %+v", c)
	}
	if c.Cmd != nil || !slices.Equal(c.Entrypoint, []string{"/usr/bin/env"}) {
		t.Errorf("Entrypoint %q Cmd %q; the base's Cmd should be reset", c.Entrypoint, c.Cmd)
	}
	for _, p := range []string{"80/tcp", "53/udp", "8080/tcp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("ExposedPorts %v lacks %s", c.ExposedPorts, p)
		}
	}
	if c.Labels["base"] != "yes" || c.Labels["vm2image.source"] != "web1" {
		t.Errorf("Labels = %v", c.Labels)
	}
	if !cfg.Created.Time.Equal(fixedTime) || len(cfg.History) != 3 || cfg.History[2].Comment != "vm2image: vm diff" ||
		!cfg.History[1].Created.Time.Equal(fixedTime) {
		t.Errorf("Created %v, History %+v", cfg.Created, cfg.History)
	}
	layers, _ := img.Layers()
	if len(layers) != 3 || len(cfg.RootFS.DiffIDs) != 3 {
		t.Fatalf("%d layers, %d diffIDs", len(layers), len(cfg.RootFS.DiffIDs))
	}
	for k, l := range layers {
		d, _ := l.DiffID()
		mt, _ := l.MediaType()
		if d != cfg.RootFS.DiffIDs[k] || mt != types.DockerLayer {
			t.Errorf("layer %d: diffID %s media type %s", k, d, mt)
		}
	}
	if _, err := Assemble(ctx, base, nil, ConfigSpec{ExposedPorts: []string{"http"}}, AssembleOptions{}); err == nil {
		t.Error("Assemble accepted the port \"http\"")
	}
	if _, err := Assemble(ctx, base, nil, ConfigSpec{Env: []string{"NOVALUE"}}, AssembleOptions{}); err == nil {
		t.Error("Assemble accepted the env entry \"NOVALUE\"")
	}
}

func TestAssembleDeterministic(t *testing.T) {
	ctx := context.Background()
	layerDir := t.TempDir()
	digest := func(spec ConfigSpec, c Compression) v1.Hash {
		base := smallBase(t, blobStore{dir: t.TempDir()})
		img, err := Assemble(ctx, base, testLayers(t, layerDir), spec, AssembleOptions{Compression: c, WorkDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, c := range []Compression{Gzip, Zstd} {
		a, b := digest(testSpec(), c), digest(testSpec(), c)
		if a != b {
			t.Errorf("%s: same inputs, digests %s and %s", c, a, b)
		}
		later := testSpec()
		later.Created = fixedTime.Add(time.Hour)
		if digest(later, c) == a {
			t.Errorf("%s: another Created time gave the same digest", c)
		}
	}
}

func TestAssembleZstdIsOCI(t *testing.T) {
	base := smallBase(t, blobStore{dir: t.TempDir()})
	img, err := Assemble(context.Background(), base, testLayers(t, t.TempDir()), testSpec(), AssembleOptions{Compression: Zstd})
	if err != nil {
		t.Fatal(err)
	}
	defer img.(io.Closer).Close()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("manifest %s config %s", m.MediaType, m.Config.MediaType)
	}
	want := []types.MediaType{types.OCILayer, types.OCILayerZStd, types.OCILayerZStd}
	for k, l := range m.Layers {
		if l.MediaType != want[k] {
			t.Errorf("layer %d: %s, want %s", k, l.MediaType, want[k])
		}
	}
	if _, err := Assemble(context.Background(), base, nil, ConfigSpec{}, AssembleOptions{Compression: "lz4"}); err == nil {
		t.Error("Assemble accepted compression lz4")
	}
}

func TestAssembleClosesWorkDir(t *testing.T) {
	base := smallBase(t, blobStore{dir: t.TempDir()})
	img, err := Assemble(context.Background(), base, testLayers(t, t.TempDir()), testSpec(), AssembleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := img.(*assembled).ownedDir
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	img.(io.Closer).Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work dir %s still there after Close", dir)
	}
	// A failing layer leaves nothing behind either.
	bad := []LayerFile{{Path: "/nonexistent/layer.tar", Comment: "broken"}}
	if _, err := Assemble(context.Background(), base, bad, testSpec(), AssembleOptions{}); err == nil {
		t.Error("Assemble of a missing layer file succeeded")
	}
}
