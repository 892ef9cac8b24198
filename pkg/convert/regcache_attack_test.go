package convert

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/builder"
	"github.com/vm2image/vm2image/pkg/debfile"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/regcache"
)

// regcachePayloadSetup starts a registry, converts tool.deb's payload once with it as the cache
// repository (a miss: built here) and returns what an attacker with push access needs: the
// repository, the entry's key, the legitimate layer tar, and a function running the payloads
// step of a second machine (an empty cache directory) that returns the payload and the warnings.
func regcachePayloadSetup(t *testing.T) (repo, key string, legit []byte, second func() (payloadLayer, string, *RegistryCache)) {
	testenv.RequireCommands(t, "dpkg-deb")
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	repo = strings.TrimPrefix(srv.URL, "http://") + "/vm2image-cache"
	archives := t.TempDir()
	pkg := pkgmgr.Package{Name: "tool", Version: "1.0", Arch: "all"}
	buildToolDeb(t, filepath.Join(archives, debName(pkg)))
	base := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(base, "usr", "bin"), 0o755))
	must(t, os.MkdirAll(filepath.Join(base, "usr", "lib"), 0o755))
	must(t, os.Symlink("usr/bin", filepath.Join(base, "bin")))
	must(t, os.Symlink("usr/lib", filepath.Join(base, "lib")))
	runOn := func(cacheDir string, warn io.Writer) (*run, payloadLayer) {
		r := &run{opts: Options{CacheDir: cacheDir, CacheRepo: repo, Insecure: true, Notef: t.Logf, Logf: t.Logf,
			Warnf: func(f string, a ...any) { t.Logf(f, a...); _, _ = io.WriteString(warn, fmt.Sprintf(f, a...)+"\n") }},
			baseDir: base, report: &Report{}}
		t.Cleanup(r.close)
		ps, err := r.payloads(context.Background(), pkgmgr.Dpkg, archives, []pkgmgr.Package{pkg}, &Grained{})
		if err != nil || len(ps) != 1 {
			t.Fatalf("payloads: %v (%d)", err, len(ps))
		}
		return r, ps[0]
	}
	r1, p1 := runOn(t.TempDir(), io.Discard)
	if len(r1.rc.pending) != 1 {
		t.Fatalf("first machine: %d entries to store, want 1", len(r1.rc.pending))
	}
	legit, err := os.ReadFile(p1.path)
	must(t, err)
	second = func() (payloadLayer, string, *RegistryCache) {
		var warn bytes.Buffer
		r, p := runOn(t.TempDir(), &warn)
		return p, warn.String(), r.rc.report
	}
	return repo, r1.rc.pending[0].key, legit, second
}

// putEntry stores layerTar (gzip-compressed here) under key with meta, as an attacker with push
// access to the cache repository can.
func putEntry(t *testing.T, repo, key string, layerTar []byte, meta any) {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	must(t, err)
	m, err := json.Marshal(meta)
	must(t, err)
	c, err := regcache.Open(context.Background(), repo, true)
	must(t, err)
	must(t, c.Put(context.Background(), key, "gzip", l, m, nil))
}

// layerInfoOf is what a payload's layer.json says of layerTar.
func layerInfoOf(t *testing.T, layerTar []byte) debfile.LayerInfo {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	must(t, err)
	d, err := l.DiffID()
	must(t, err)
	return debfile.LayerInfo{DiffID: d.String(), Size: int64(len(layerTar)), Entries: 3}
}

// TestAttackRegistryPayloadExcludedFile: an attacker with push access to the cache repository
// stores, under a package's payload key, the package's real layer plus a file under the
// conversion's excludes (/tmp/*). Neither the configuration layer's diff nor verify look under
// the excludes, so the file would reach the image unseen: the entry must be refused, since it
// is not the layer this .deb makes.
func TestAttackRegistryPayloadExcludedFile(t *testing.T) {
	repo, key, legit, second := regcachePayloadSetup(t)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tr := tar.NewReader(bytes.NewReader(legit))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		must(t, tw.WriteHeader(h))
		_, err = io.Copy(tw, tr)
		must(t, err)
	}
	must(t, tw.WriteHeader(&tar.Header{Name: "tmp/evil", Mode: 0o755, Size: 5, Typeflag: tar.TypeReg}))
	_, err := tw.Write([]byte("evil\n"))
	must(t, err)
	must(t, tw.Close())
	putEntry(t, repo, key, tb.Bytes(), layerInfoOf(t, tb.Bytes()))

	p, warn, rep := second()
	if names := tarNames(t, p.path); slices.Contains(names, "tmp/evil") {
		t.Errorf("the poisoned payload layer was used (source %q): %q", p.source, names)
	}
	if len(rep.Refused) != 1 || !strings.Contains(warn, "refusing entry") {
		t.Errorf("entry not refused: report %+v, warnings %q", rep, warn)
	}
}

// TestAttackRegistryCacheWarningEscapes: a refused entry's warning goes to the operator's
// terminal; the strings an attacker put in the entry must not carry escape sequences there.
func TestAttackRegistryCacheWarningEscapes(t *testing.T) {
	repo, key, legit, second := regcachePayloadSetup(t)
	info := layerInfoOf(t, legit)
	info.DiffID = "sha256:\x1b]0;pwned\x07\x1b[2J"
	putEntry(t, repo, key, legit, info)
	_, warn, rep := second()
	if !strings.Contains(warn, "refusing entry") {
		t.Fatalf("entry not refused: %q", warn)
	}
	if strings.ContainsAny(warn, "\x1b\x07") || strings.ContainsAny(strings.Join(rep.Refused, ""), "\x1b\x07") {
		t.Errorf("the warning carries the entry's control characters: %q", warn)
	}
}

// TestRegistryPayloadLegitEntryHit: the entry another machine stored for the same .deb is the
// layer this machine makes: it is taken from the registry cache, not refused.
func TestRegistryPayloadLegitEntryHit(t *testing.T) {
	repo, key, legit, second := regcachePayloadSetup(t)
	putEntry(t, repo, key, legit, layerInfoOf(t, legit))
	p, warn, rep := second()
	if rep.Hits != 1 || len(rep.Refused) != 0 || !strings.HasPrefix(p.source, "registry cache") {
		t.Errorf("legitimate entry not taken: source %q, report %+v, warnings %q", p.source, rep, warn)
	}
}

// TestAttackRegistryPackagesLayerExcludedFile: an attacker with push access to the cache
// repository stores, under the single packages layer's key, a layer with a file under the
// conversion's excludes, directly or through a symlink of the same layer. The VM's diff and
// verify never look under the excludes, so the entry must be refused, not imported.
func TestAttackRegistryPackagesLayerExcludedFile(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	repo := strings.TrimPrefix(srv.URL, "http://") + "/vm2image-cache"
	for i, entries := range [][]tar.Header{
		{{Name: "tmp/evil", Typeflag: tar.TypeReg, Size: 5}},
		{{Name: "tmpx", Typeflag: tar.TypeSymlink, Linkname: "tmp"}, {Name: "tmpx/evil", Typeflag: tar.TypeReg, Size: 5}},
		{}, // the legitimate layer: imported
	} {
		in := builder.Input{BaseDigest: fmt.Sprintf("sha256:%064d", i), VM: &pkgmgr.DB{Manager: "dpkg"}, Plan: &pkgmgr.Plan{Manager: "dpkg"}}
		key := builder.EntryKey(in)
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		must(t, tw.WriteHeader(&tar.Header{Name: "usr/bin/app", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5}))
		_, err := tw.Write([]byte("app!\n"))
		must(t, err)
		for _, h := range entries {
			h.Mode = 0o755
			must(t, tw.WriteHeader(&h))
			if h.Size > 0 {
				_, err := tw.Write([]byte("evil\n"))
				must(t, err)
			}
		}
		must(t, tw.Close())
		info := layerInfoOf(t, tb.Bytes())
		putEntry(t, repo, key, tb.Bytes(), map[string]any{"version": 1, "key": key, "base_digest": in.BaseDigest,
			"layer_diff_id": info.DiffID, "layer_size": info.Size})
		var warn bytes.Buffer
		r := &run{opts: Options{CacheDir: t.TempDir(), CacheRepo: repo, Insecure: true, PackageLayers: PackageLayersSingle,
			Notef: t.Logf, Logf: t.Logf, Warnf: func(f string, a ...any) { fmt.Fprintf(&warn, f+"\n", a...) }}, report: &Report{}}
		layers := filepath.Join(t.TempDir(), "layers")
		must(t, r.packagesFromRegistry(context.Background(), in, layers))
		_, err = os.Stat(filepath.Join(layers, key))
		if len(entries) == 0 {
			if err != nil || r.rc.report.Hits != 1 {
				t.Errorf("the legitimate packages layer was not imported: %v (report %+v, warnings %q)", err, r.rc.report, warn.String())
			}
			continue
		}
		if err == nil || len(r.rc.report.Refused) != 1 {
			t.Errorf("%s: the poisoned packages layer was imported (report %+v, warnings %q)", entries[len(entries)-1].Name, r.rc.report, warn.String())
		}
	}
}
