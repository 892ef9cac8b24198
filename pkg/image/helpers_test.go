package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vm2image/vm2image/internal/testenv"
)

// baseTag is the Docker engine image the integration tests import from the bookworm root.
const baseTag = testenv.BaseTag

var bookworm = testenv.Recipe{Suite: "bookworm"}

// shared holds what the tests of this process build once.
var shared struct {
	mu        sync.Mutex
	cacheDir  string
	base      *Base
	rootTree  map[string]string
	engine    EngineClient
	engineErr error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{shared.cacheDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// scratchDir is a temporary directory on a tmpfs when there is one (/dev/shm), removed when
// the test ends: fast to fill and to remove.
func scratchDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "vm2image-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// cacheDir is the ResolveOptions.CacheDir the tests of this process share: a base layer is
// compressed once and found there by the next resolution.
func cacheDir(t *testing.T) string {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cacheDir == "" {
		d, err := os.MkdirTemp("", "vm2image-image-cache-")
		if err != nil {
			t.Fatal(err)
		}
		shared.cacheDir = d
	}
	return shared.cacheDir
}

func requireEngine(t *testing.T) EngineClient {
	t.Helper()
	testenv.RequireDocker(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.engine == nil && shared.engineErr == nil {
		shared.engine, shared.engineErr = NewEngine(context.Background())
	}
	if shared.engineErr != nil {
		t.Fatalf("connecting to the engine: %v", shared.engineErr)
	}
	return shared.engine
}

// debianRoot returns the cached debootstrap bookworm root.
func debianRoot(t *testing.T) string {
	t.Helper()
	testenv.Short(t)
	return testenv.Root(t, bookworm)
}

// importBase makes sure the engine has baseTag, imported from the bookworm root: once per
// process, and only when the image there was not imported from this very root.
func importBase(t *testing.T) {
	t.Helper()
	testenv.EngineBase(t)
}

// engineBase resolves baseTag from the engine once per process.
func engineBase(t *testing.T) *Base {
	t.Helper()
	importBase(t)
	shared.mu.Lock()
	b := shared.base
	shared.mu.Unlock()
	if b != nil {
		return b
	}
	start := time.Now()
	b, err := Resolve(testCtx(t), "docker-daemon:"+baseTag, ResolveOptions{CacheDir: cacheDir(t), Engine: requireEngine(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resolved %s from the engine in %v", baseTag, time.Since(start))
	shared.mu.Lock()
	shared.base = b
	shared.mu.Unlock()
	return b
}

// rootTree is the tree manifest of the bookworm root, computed once.
func rootTree(t *testing.T) map[string]string {
	root := debianRoot(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.rootTree == nil {
		shared.rootTree = treeManifest(t, root)
	}
	return shared.rootTree
}

// treeManifest describes every entry under dir: type, mode, owner, size, content digest or link
// target, and the mtime of non-directories.
func treeManifest(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			desc += fmt.Sprintf(" %d %s mtime=%d", fi.Size(), fileDigest(t, p), fi.ModTime().Unix())
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0:
			desc += fmt.Sprintf(" dev=%d", st.Rdev)
		}
		m[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fileDigest(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// compareTrees fails with the first differences between two tree manifests.
func compareTrees(t *testing.T, want, got map[string]string, what string) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing "+p)
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: %s, want %s", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... %d more", len(diffs)-20))
		}
		t.Fatalf("%s differs from the root (%d entries vs %d):\n%s", what, len(got), len(want), strings.Join(diffs, "\n"))
	}
}

func diffIDs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.RootFS.DiffIDs
}

// startRegistry runs Debian's docker-registry on a free port of 127.0.0.1 for the test and
// returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	return testenv.Registry(t)
}

// tarEntry is one entry of a tar built by buildTar.
type tarEntry struct {
	name     string
	typ      byte // tar.TypeReg when 0
	body     string
	mode     int64
	link     string
	uid, gid int
	xattrs   map[string]string
	major    int64
	minor    int64
}

// buildTar returns an uncompressed PAX tar of entries, with a fixed mtime.
func buildTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Gid: e.gid,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX, Devmajor: e.major, Devminor: e.minor}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeTarFile(t *testing.T, dir, name string, entries []tarEntry) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buildTar(t, entries), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
