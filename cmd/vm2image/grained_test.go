package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
)

// webLite is a second web VM: nginx-light without the WebVM's busybox and app user, so its
// install set overlaps the WebVM's without being the same.
var webLite = testenv.Recipe{Suite: "bookworm", Packages: []string{"nginx-light", "libcap2-bin"}}

func convertGrained(t *testing.T, root, out string, extra ...string) *convert.Report {
	t.Helper()
	report := out + ".report.json"
	cmd := exec.Command(vm2imageBinary(t), append([]string{"convert", "dir:" + root, "-o", out, "--no-context", "--report", report,
		"--package-layers", "grained", "--base", "docker-daemon:" + testenv.EngineBase(t), "--cache-dir", convertCacheDir()}, extra...)...)
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("convert --package-layers grained: %v\n%s", err, b)
	}
	var rep convert.Report
	b, err := os.ReadFile(report)
	must(t, err)
	must(t, json.Unmarshal(b, &rep))
	return &rep
}

// TestGrainedPackageLayers: two different VMs that both install nginx-light, converted with
// package-grained layers: nginx-light's layer is the same blob (diffID and compressed digest) in
// both images, each image has its package layers and a configuration layer, and verify finds
// each image equal to its VM.
func TestGrainedPackageLayers(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	dir := t.TempDir()
	roots := []string{testenv.Root(t, testenv.WebVM), testenv.Root(t, webLite)}
	digests := make([]map[string]string, 2) // package -> compressed digest of its layer
	for i, root := range roots {
		out := filepath.Join(dir, []string{"web.tar", "lite.tar"}[i])
		rep := convertGrained(t, root, out)
		g := rep.Packages.Grained
		if g == nil || g.OwnLayers == 0 || len(g.NoArchive) > 0 {
			t.Fatalf("VM %d: grained figures %+v", i, g)
		}
		digests[i] = map[string]string{}
		byDiffID := map[string]convert.LayerSizes{}
		roles := map[string]int{}
		for _, l := range rep.Image.Layers {
			byDiffID[l.DiffID] = l
			roles[l.Role]++
		}
		for _, pl := range g.Layers {
			digests[i][pl.Name+" "+pl.Version] = byDiffID[pl.DiffID].Digest
		}
		if roles["package"] != g.OwnLayers || roles["packages-config"] != 1 || roles["packages"] != 0 || len(rep.Image.Layers) > convert.DefaultMaxLayers {
			t.Errorf("VM %d: layer roles %v", i, roles)
		}
		v, err := exec.Command(vm2imageBinary(t), "verify", out, "dir:"+root).CombinedOutput()
		if err != nil {
			t.Errorf("verify of the grained image of VM %d: %v\n%s", i, err, v)
		}
	}
	shared := 0
	for k, d := range digests[0] {
		if d2, ok := digests[1][k]; ok {
			shared++
			if d != d2 || d == "" {
				t.Errorf("%s: layer %s in one image, %s in the other", k, d, d2)
			}
		}
	}
	found := false
	for k := range digests[1] {
		found = found || strings.HasPrefix(k, "nginx-light ")
	}
	if shared == 0 || !found {
		t.Errorf("no package layer shared (%d), or no nginx-light layer: %v", shared, digests[1])
	}
	// The engine loads grained images, a bundle included: Docker refuses a layer that holds a
	// path twice, which payloads shipping lib/x and usr/lib/x (merged /usr) and bundles of
	// payloads sharing usr/ made before.
	bundled := filepath.Join(dir, "bundled.tar")
	if rep := convertGrained(t, roots[0], bundled, "--max-layers", "10"); rep.Packages.Grained.Bundled == 0 {
		t.Errorf("--max-layers 10: no package bundled: %+v", rep.Packages.Grained)
	}
	for _, out := range []string{filepath.Join(dir, "web.tar"), filepath.Join(dir, "lite.tar"), bundled} {
		b, err := exec.Command("docker", "load", "-i", out).CombinedOutput()
		if err != nil {
			t.Errorf("docker load of %s: %v\n%s", filepath.Base(out), err, b)
			continue
		}
		if id := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(b)), "Loaded image ID:")); strings.HasPrefix(id, "sha256:") {
			exec.Command("docker", "rmi", "-f", id).Run()
		}
	}
}

// TestGrainedBuildWithoutArchives: the packages build comes from the cache but its package
// files are gone (an archive store pruned, or a layer taken from a registry cache, which
// carries no package files). The conversion downloads them again, nothing installed, and
// the image holds the same payload layers as when they were built.
func TestGrainedBuildWithoutArchives(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	root := testenv.Root(t, webLite)
	cacheDir := t.TempDir() // its own cache: the shared one's archives stay
	dir := t.TempDir()
	first := convertGrained(t, root, filepath.Join(dir, "first.tar"), "--cache-dir", cacheDir)
	if first.Packages.CacheHit || first.Packages.Grained.Downloaded != 0 || len(first.Packages.Grained.NoArchive) > 0 {
		t.Fatalf("first conversion: cache hit %v, grained %+v", first.Packages.CacheHit, first.Packages.Grained)
	}
	stores, err := filepath.Glob(filepath.Join(cacheDir, "*archives*"))
	must(t, err)
	if len(stores) == 0 {
		t.Fatalf("no archive store in %s", cacheDir)
	}
	for _, s := range stores {
		must(t, os.RemoveAll(s))
	}
	out := filepath.Join(dir, "second.tar")
	second := convertGrained(t, root, out, "--cache-dir", cacheDir)
	g := second.Packages.Grained
	if !second.Packages.CacheHit || g.Downloaded == 0 || len(g.NoArchive) > 0 {
		t.Fatalf("second conversion: cache hit %v, grained %+v", second.Packages.CacheHit, g)
	}
	want := map[string]string{}
	for _, l := range first.Packages.Grained.Layers {
		want[l.Name+" "+l.Version] = l.DiffID
	}
	got := map[string]string{}
	for _, l := range g.Layers {
		got[l.Name+" "+l.Version] = l.DiffID
	}
	if d := cmp.Diff(want, got); d != "" || len(got) == 0 {
		t.Errorf("payload layers after the archives were pruned (-built +fetched):\n%s", d)
	}
	if v, err := exec.Command(vm2imageBinary(t), "verify", out, "dir:"+root).CombinedOutput(); err != nil {
		t.Errorf("verify: %v\n%s", err, v)
	}
}
