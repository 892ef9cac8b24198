package image

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/pgzip"
)

// checkUnpacked unpacks base and compares the tree with the bookworm root.
func checkUnpacked(t *testing.T, b *Base) {
	t.Helper()
	dir := scratchDir(t)
	start := time.Now()
	if err := Unpack(testCtx(t), b.Image, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("unpacked %s (%s) in %v", b.Ref, b.Transport, time.Since(start))
	compareTrees(t, rootTree(t), treeManifest(t, dir), "unpacked "+b.Transport+" image")
}

// sameImage fails unless b holds the layers of the engine's base image.
func sameImage(t *testing.T, b *Base) {
	t.Helper()
	want := diffIDs(t, engineBase(t).Image)
	if got := diffIDs(t, b.Image); !slices.Equal(got, want) {
		t.Fatalf("%s: diffIDs %v, want %v", b.Transport, got, want)
	}
}

func TestResolveFromEngine(t *testing.T) {
	b := engineBase(t)
	if b.Transport != TransportDaemon || b.Ref != baseTag || len(b.Tried) != 0 {
		t.Errorf("base = %+v", b)
	}
	checkUnpacked(t, b)

	// Without a transport the engine is asked first; the layer is found in the cache.
	start := time.Now()
	plain, err := Resolve(testCtx(t), baseTag, ResolveOptions{CacheDir: cacheDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resolved %s again (cached layers) in %v", baseTag, time.Since(start))
	if plain.Transport != TransportDaemon || plain.Digest != b.Digest {
		t.Errorf("plain reference: transport %s digest %s, want %s %s", plain.Transport, plain.Digest, TransportDaemon, b.Digest)
	}
}

func TestResolveFromOCILayout(t *testing.T) {
	b := engineBase(t)
	dir := filepath.Join(t.TempDir(), "layout")
	if err := WriteOCILayout(testCtx(t), dir, b.Image, "bookworm"); err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(testCtx(t), "oci:"+dir+":bookworm", ResolveOptions{CacheDir: cacheDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Transport != TransportOCI {
		t.Errorf("transport %s", got.Transport)
	}
	sameImage(t, got)
	checkUnpacked(t, got)
	if _, err := Resolve(testCtx(t), "oci:"+dir+":nope", ResolveOptions{CacheDir: cacheDir(t)}); err == nil ||
		!strings.Contains(err.Error(), `no image tagged "nope"`) {
		t.Errorf("missing tag: %v", err)
	}
}

func TestResolveFromDockerArchive(t *testing.T) {
	importBase(t)
	file := filepath.Join(t.TempDir(), "saved.tar")
	run(t, "docker", "save", "-o", file, baseTag)
	for _, ref := range []string{"docker-archive:" + file, "docker-archive:" + file + ":" + baseTag} {
		got, err := Resolve(testCtx(t), ref, ResolveOptions{CacheDir: cacheDir(t)})
		if err != nil {
			t.Fatal(err)
		}
		if got.Transport != TransportArchive {
			t.Errorf("transport %s", got.Transport)
		}
		sameImage(t, got)
	}
	if _, err := Resolve(testCtx(t), "docker-archive:"+file+":other/name:1", ResolveOptions{CacheDir: cacheDir(t)}); err == nil ||
		!strings.Contains(err.Error(), `none is "other/name:1"`) {
		t.Errorf("an image the archive lacks: %v", err)
	}
	// A fresh cache: the layer is read from the archive itself.
	got, err := Resolve(testCtx(t), "docker-archive:"+file, ResolveOptions{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sameImage(t, got)
	checkUnpacked(t, got)
}

func TestResolveFromRegistry(t *testing.T) {
	b := engineBase(t)
	addr := startRegistry(t)
	ref := "localhost:" + strings.Split(addr, ":")[1] + "/vm2image/debian:bookworm"
	if _, err := Push(testCtx(t), ref, b.Image, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	// Not in the engine under that name, so the registry is asked next.
	got, err := Resolve(testCtx(t), ref, ResolveOptions{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got.Transport != TransportRegistry || got.Digest != b.Digest {
		t.Errorf("transport %s digest %s, want registry %s", got.Transport, got.Digest, b.Digest)
	}
	if len(got.Tried) != 1 || !strings.Contains(got.Tried[0], "docker engine") || !strings.Contains(got.Tried[0], "no such image") {
		t.Errorf("Tried = %q", got.Tried)
	}
	sameImage(t, got)
	checkUnpacked(t, got)
}

// rootfsTarball writes the bookworm root as a gzip tarball, as distributions publish them.
func rootfsTarball(t *testing.T) []byte {
	root := debianRoot(t)
	cmd := exec.Command("tar", "-C", root, "--numeric-owner", "--xattrs", "-cf", "-", ".")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	zw := pgzip.NewWriter(&buf)
	if _, err := io.Copy(zw, out); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return []byte(buf.String())
}

// flakyServer serves data, cutting the first full download after half of it; later requests
// are served whole or by range.
type flakyServer struct {
	data   []byte
	mu     sync.Mutex
	gets   []string // the Range header of each GET
	broken atomic.Bool
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		s.mu.Lock()
		s.gets = append(s.gets, r.Header.Get("Range"))
		s.mu.Unlock()
	}
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" && !s.broken.Swap(true) {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.data[:len(s.data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-way
	}
	http.ServeContent(w, r, "rootfs.tar.gz", time.Unix(1700000000, 0), strings.NewReader(string(s.data)))
}

func TestResolveFromURLWithResume(t *testing.T) {
	srv := &flakyServer{data: rootfsTarball(t)}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	url := ts.URL + "/rootfs.tar.gz"
	var calls atomic.Int64
	var last atomic.Int64
	opts := ResolveOptions{CacheDir: t.TempDir(), Progress: func(done, total int64) {
		calls.Add(1)
		last.Store(done)
	}}
	got, err := Resolve(testCtx(t), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got.Transport != TransportHTTP || got.Ref != url {
		t.Errorf("base = %+v", got)
	}
	srv.mu.Lock()
	gets := slices.Clone(srv.gets)
	srv.mu.Unlock()
	if len(gets) != 2 || gets[0] != "" || gets[1] != "bytes="+strconv.Itoa(len(srv.data)/2)+"-" {
		t.Errorf("GET requests with ranges %q; want a full one, then one resuming at half", gets)
	}
	if calls.Load() == 0 || last.Load() != int64(len(srv.data)) {
		t.Errorf("progress called %d times, last done=%d of %d", calls.Load(), last.Load(), len(srv.data))
	}
	cfg, _ := got.Image.ConfigFile()
	if cfg.OS != "linux" || cfg.Architecture == "" || len(cfg.RootFS.DiffIDs) != 1 {
		t.Errorf("config os/arch %s/%s, %d layers", cfg.OS, cfg.Architecture, len(cfg.RootFS.DiffIDs))
	}
	checkUnpacked(t, got)

	// Cached by digest: no new download, same image.
	again, err := Resolve(testCtx(t), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	n := len(srv.gets)
	srv.mu.Unlock()
	if n != 2 || again.Digest != got.Digest {
		t.Errorf("second resolution: %d GETs, digest %s vs %s", n, again.Digest, got.Digest)
	}
	// A pinned digest that does not match fails.
	if _, err := Resolve(testCtx(t), url+"#sha256="+strings.Repeat("0", 64), ResolveOptions{CacheDir: t.TempDir()}); err == nil {
		t.Error("a wrong pinned digest was accepted")
	}
}

func TestResolveNotFound(t *testing.T) {
	requireEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := Resolve(ctx, "nonexistent/thing:1", ResolveOptions{CacheDir: t.TempDir()})
	var rerr *ResolveError
	if !errors.As(err, &rerr) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("error %v (%T); want a *ResolveError wrapping ErrNotFound", err, err)
	}
	msg := err.Error()
	t.Logf("%s", msg)
	if len(rerr.Attempts) != 2 || !strings.Contains(msg, "docker engine at unix://") ||
		!strings.Contains(msg, "no such image nonexistent/thing:1") || !strings.Contains(msg, "registry index.docker.io") {
		t.Errorf("the error does not list the engine and the registry:\n%s", msg)
	}
}

func TestResolveBadReferences(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ ref, want string }{
		{"oci:" + filepath.Join(dir, "missing"), "OCI layout"},
		{"docker-archive:" + filepath.Join(dir, "missing.tar"), "docker-archive"},
		{"registry://Not A Reference", "parsing reference"},
		{"", "empty reference"},
	}
	for _, tt := range tests {
		_, err := Resolve(context.Background(), tt.ref, ResolveOptions{CacheDir: dir})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve(%q) = %v; want an error with %q", tt.ref, err, tt.want)
		}
	}
	os.WriteFile(filepath.Join(dir, "junk.tar"), []byte("junk"), 0o644)
	if _, err := Resolve(context.Background(), "docker-archive:"+filepath.Join(dir, "junk.tar"), ResolveOptions{CacheDir: dir}); err == nil {
		t.Error("a junk archive resolved")
	}
}
