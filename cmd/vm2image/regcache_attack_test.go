package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
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

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/regcache"
)

// evilLayer is a gzip layer an attacker would like applied: a file that climbs out of the
// root and one that plants itself in /etc.
func evilLayer(t *testing.T, escape string) []byte {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, n := range []string{"../../../../../../.." + escape, "etc/vm2image-evil"} {
		must(t, tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 5, Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte("evil\n"))
		must(t, err)
	}
	must(t, tw.Close())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write(tb.Bytes())
	must(t, err)
	must(t, zw.Close())
	return gz.Bytes()
}

// rawManifest is a manifest to put as it is.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// poison rewrites the cache entry at tag as an attacker with push access to the cache
// repository would, in one of three ways, and says which.
func poison(t *testing.T, repo name.Repository, tag string, how int, evil []byte) string {
	ref := repo.Tag(tag)
	img, err := remote.Image(ref)
	must(t, err)
	raw, err := img.RawManifest()
	must(t, err)
	var m v1.Manifest
	must(t, json.Unmarshal(raw, &m))
	cfg, err := img.RawConfigFile()
	must(t, err)
	var e regcache.Entry
	must(t, json.Unmarshal(cfg, &e))
	bad := static.NewLayer(evil, types.OCILayer)
	must(t, remote.WriteLayer(repo, bad))
	bd, _ := bad.Digest()
	what := ""
	switch how {
	case 0: // the manifest names the evil blob, the config still the genuine one
		m.Layers[0].Digest, m.Layers[0].Size = bd, int64(len(evil))
		what = "digest"
	case 1: // manifest and config name the evil blob, the config keeps the genuine diffID
		m.Layers[0].Digest, m.Layers[0].Size, m.Layers[0].MediaType = bd, int64(len(evil)), types.OCILayer
		e.Digest, e.Size, e.MediaType = bd.String(), int64(len(evil)), string(types.OCILayer)
		what = "diffID"
	case 2: // a huge layer: the downloader must not believe it
		m.Layers[0].Size = 1 << 50
		e.Size = 1 << 50
		what = "size"
	}
	cfg, err = json.Marshal(e)
	must(t, err)
	cl := static.NewLayer(cfg, regcache.ConfigMediaType)
	must(t, remote.WriteLayer(repo, cl))
	m.Config.Digest, _ = cl.Digest()
	m.Config.Size = int64(len(cfg))
	raw, err = json.Marshal(m)
	must(t, err)
	if err := remote.Put(ref, rawManifest(raw)); err != nil {
		t.Logf("the registry refuses the %s-poisoned manifest of %s: %v", what, tag, err)
		return ""
	}
	return what
}

// TestAttackRegistryCachePoisoned: an attacker with push access to the cache repository
// replaces every entry worker A stored: one with a manifest that names another blob than its
// config records, one whose blob (a tar that climbs out of the root) does not have the diffID
// its config records, one that claims a 1 PiB layer. Worker B refuses each with a clear
// warning, builds those layers instead, never applies the attacker's layer (nothing lands
// outside the root, verify finds B's image equal to its VM).
func TestAttackRegistryCachePoisoned(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	reg := testenv.Registry(t)
	cacheRepo := reg + "/vm2image-cache"
	dir := t.TempDir()
	repA, _ := worker(t, testenv.Root(t, testenv.WebVM), filepath.Join(dir, "cache-a"), cacheRepo, reg+"/a:1", filepath.Join(dir, "a.tar"))
	if repA.RegistryCache == nil || repA.RegistryCache.Pushed == 0 {
		t.Fatalf("worker A stored nothing in the cache: %+v", repA.RegistryCache)
	}
	repo, err := name.NewRepository(cacheRepo)
	must(t, err)
	tags, err := remote.List(repo)
	must(t, err)
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	escape := "/tmp/vm2image-evil-" + hex.EncodeToString(nonce[:])
	evil := evilLayer(t, escape)
	kinds := map[string]int{}
	for i, tag := range tags {
		if w := poison(t, repo, tag, i%3, evil); w != "" {
			kinds[w]++
		}
	}
	if kinds["digest"] == 0 || kinds["diffID"] == 0 {
		t.Fatalf("poisoned %v of %d entries; want each kind", kinds, len(tags))
	}

	lite := testenv.Root(t, webLite)
	outB := filepath.Join(dir, "b.tar")
	repB, log := worker(t, lite, filepath.Join(dir, "cache-b"), cacheRepo, reg+"/b:1", outB)
	rc := repB.RegistryCache
	if rc == nil || rc.Hits != 0 || len(rc.Refused) == 0 {
		t.Fatalf("worker B's registry cache figures: %+v", rc)
	}
	refusals := strings.Join(rc.Refused, "\n")
	for _, want := range []string{"records blob", "uncompresses to diffID"} {
		if !strings.Contains(refusals, want) {
			t.Errorf("no refusal says %q:\n%s", want, refusals)
		}
	}
	if kinds["size"] > 0 && !strings.Contains(refusals, fmt.Sprintf("layer of %d bytes", int64(1<<50))) {
		t.Errorf("the 1 PiB entry was not refused for its size:\n%s", refusals)
	}
	if !strings.Contains(log, "refusing entry") {
		t.Errorf("worker B did not warn about the refused entries:\n%s", log)
	}
	for k, l := range payloadSources(repB) {
		if l.Source != convert.SourceBuilt {
			t.Errorf("worker B, %s: source %q, want built", k, l.Source)
		}
	}
	if _, err := os.Lstat(escape); err == nil {
		os.Remove(escape)
		t.Fatalf("the attacker's layer was applied: %s exists", escape)
	}
	if v, err := exec.Command(vm2imageBinary(t), "verify", outB, "dir:"+lite).CombinedOutput(); err != nil {
		t.Errorf("verify of worker B's image: %v\n%s", err, v)
	}
}

// TestAttackRegistryGrainedRecord: worker A stores the install set's grained record (its layer
// the configuration layer, its record the payloads and bundle); an attacker with push access to
// the cache repository then rewrites it, and worker B (an empty cache) converts the same VM
// each time:
//   - a configuration layer with a file under the excludes (no diff or verify looks there):
//     refused, the packages installed instead;
//   - a record naming a payload with escape sequences: refused (one naming a package the VM
//     lacks is taken: installers add packages the VM lacks);
//   - a payload entry the record names, with a file under the excludes added: refused;
//   - a record whose layers claim more bytes together than one entry may hold: refused;
//   - a configuration layer that plants a file elsewhere (a consistent record): taken, and the
//     VM diff removes the file again: verify finds B's image equal to its VM.
func TestAttackRegistryGrainedRecord(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	reg := testenv.Registry(t)
	cacheRepo := reg + "/vm2image-cache"
	dir := t.TempDir()
	root := testenv.Root(t, webLite)
	repA, _ := worker(t, root, filepath.Join(dir, "cache-a"), cacheRepo, reg+"/a:1", filepath.Join(dir, "a.tar"), "--max-layers", "10")
	key := repA.Packages.Grained.Record
	if key == "" {
		t.Fatal("worker A stored no grained record")
	}
	ctx := context.Background()
	c, err := regcache.Open(ctx, cacheRepo, true)
	must(t, err)
	entryOf := func(key string) ([]byte, map[string]any) {
		e, err := c.Lookup(ctx, key, "gzip")
		must(t, err)
		if e == nil {
			t.Fatalf("no entry %s", key)
		}
		var tb bytes.Buffer
		must(t, c.Fetch(ctx, e, t.TempDir(), &tb))
		var meta map[string]any
		must(t, json.Unmarshal(e.Meta, &meta))
		return tb.Bytes(), meta
	}
	put := func(key string, layerTar []byte, meta any) {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
		must(t, err)
		m, err := json.Marshal(meta)
		must(t, err)
		must(t, c.Put(ctx, key, "gzip", l, m, nil))
	}
	withFile := func(layerTar []byte, name string) []byte {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		tr := tar.NewReader(bytes.NewReader(layerTar))
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
		must(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: 5, Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte("evil\n"))
		must(t, err)
		must(t, tw.Close())
		return tb.Bytes()
	}
	diffID := func(b []byte) string {
		h := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(h[:])
	}
	cfgTar, rec := entryOf(key)
	recWith := func(layerTar []byte) map[string]any {
		m := map[string]any{}
		for k, v := range rec {
			m[k] = v
		}
		m["config_diff_id"], m["config_size"] = diffID(layerTar), len(layerTar)
		return m
	}
	payloads := rec["payloads"].([]any)
	var ownKey string
	for _, p := range payloads {
		if p := p.(map[string]any); p["own"] == true {
			ownKey = p["key"].(string)
			break
		}
	}
	payloadTar, payloadMeta := entryOf(ownKey)
	renamed := func(name string) map[string]any { // the record with its first payload renamed
		m := recWith(cfgTar)
		ps := slices.Clone(payloads)
		p0 := map[string]any{}
		for k, v := range ps[0].(map[string]any) {
			p0[k] = v
		}
		p0["name"] = name
		ps[0] = p0
		m["payloads"] = ps
		return m
	}

	for i, tc := range []struct {
		name    string
		poison  func()
		refused string // "" when the entry is taken
	}{
		{"excluded file in the configuration layer", func() {
			bad := withFile(cfgTar, "tmp/vm2image-evil")
			put(key, bad, recWith(bad))
		}, "lies under the exclude"},
		{"a payload named with escape sequences", func() { put(key, cfgTar, renamed("evil\x1b]0;pwned\x07")) }, "not a package name"},
		{"excluded file in a payload (the record names it)", func() {
			bad := withFile(payloadTar, "tmp/vm2image-evil")
			m := map[string]any{}
			for k, v := range payloadMeta {
				m[k] = v
			}
			m["diff_id"], m["size"] = diffID(bad), len(bad)
			put(ownKey, bad, m)
			r := recWith(cfgTar)
			ps := slices.Clone(payloads)
			for j, p := range ps {
				if p := p.(map[string]any); p["key"] == ownKey {
					q := map[string]any{}
					for k, v := range p {
						q[k] = v
					}
					q["layer"] = m
					ps[j] = q
				}
			}
			r["payloads"] = ps
			put(key, cfgTar, r)
		}, "lies under the exclude"},
		{"layers claiming 16 GiB together", func() {
			m := recWith(cfgTar)
			var ps []any
			for _, p := range payloads {
				q := map[string]any{}
				for k, v := range p.(map[string]any) {
					q[k] = v
				}
				if q["own"] == true {
					l := map[string]any{}
					for k, v := range q["layer"].(map[string]any) {
						l[k] = v
					}
					l["size"] = 8 << 30
					q["layer"] = l
				}
				ps = append(ps, q)
			}
			m["payloads"] = ps
			put(key, cfgTar, m)
		}, "claim over"},
		// A name the VM lacks is taken (the installer may add packages the VM lacks): the
		// layer is the payload the record names, whatever its label.
		{"a payload named as a package the VM lacks", func() {
			put(ownKey, payloadTar, payloadMeta)
			put(key, cfgTar, renamed("vm2image-other"))
		}, ""},
		{"a file planted outside the excludes", func() {
			put(ownKey, payloadTar, payloadMeta)
			bad := withFile(cfgTar, "usr/local/bin/vm2image-planted")
			put(key, bad, recWith(bad))
		}, ""},
	} {
		tc.poison()
		out := filepath.Join(dir, fmt.Sprintf("b%d.tar", i))
		rep, log := worker(t, root, filepath.Join(dir, fmt.Sprintf("cache-b%d", i)), cacheRepo, reg+"/b:1", out, "--max-layers", "10")
		refusals := strings.Join(rep.RegistryCache.Refused, "\n")
		if tc.refused == "" {
			if !rep.Packages.CacheHit || refusals != "" {
				t.Errorf("%s: the record was not taken (hit %v): %s\n%s", tc.name, rep.Packages.CacheHit, refusals, log)
			}
		} else {
			if rep.Packages.CacheHit || rep.Packages.InstallSeconds == 0 || !strings.Contains(refusals, tc.refused) {
				t.Errorf("%s: hit %v, refusals %q; want a refusal saying %q and an install", tc.name, rep.Packages.CacheHit, refusals, tc.refused)
			}
			if !strings.Contains(log, "refusing entry") {
				t.Errorf("%s: no warning:\n%s", tc.name, log)
			}
		}
		if v, err := exec.Command(vm2imageBinary(t), "verify", out, "dir:"+root).CombinedOutput(); err != nil || !strings.Contains(string(v), "EQUAL") {
			t.Errorf("%s: verify of worker B's image: %v\n%s", tc.name, err, v)
		}
	}
}
