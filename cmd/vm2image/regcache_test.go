package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
)

// worker runs `convert` as one machine of a fleet would: its own cache directory, the
// registry (and its cache repository) shared; it writes out and pushes to push.
func worker(t *testing.T, root, cacheDir, cacheRepo, push, out string, extra ...string) (*convert.Report, string) {
	t.Helper()
	report := out + ".report.json"
	args := append([]string{"convert", "dir:" + root, "-o", out, "--no-context", "--report", report,
		"--package-layers", "grained", "--base", "docker-daemon:" + testenv.EngineBase(t), "--cache-dir", cacheDir,
		"--cache-repo", cacheRepo, "--push", push}, extra...)
	cmd := exec.Command(vm2imageBinary(t), args...)
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("convert --cache-repo %s: %v\n%s", cacheRepo, err, b)
	}
	var rep convert.Report
	raw, err := os.ReadFile(report)
	must(t, err)
	must(t, json.Unmarshal(raw, &rep))
	return &rep, string(b)
}

// payloadSources maps "name version" of each payload layer to where it came from.
func payloadSources(rep *convert.Report) map[string]convert.PayloadLayer {
	out := map[string]convert.PayloadLayer{}
	if rep.Packages != nil && rep.Packages.Grained != nil {
		for _, l := range rep.Packages.Grained.Layers {
			out[l.Name+" "+l.Version] = l
		}
	}
	return out
}

// TestRegistryCacheTwoWorkers: worker A converts the web VM with its own empty cache and
// --cache-repo, and pushes; worker B, another "machine" (its own empty cache directory) that
// shares only the registry, converts a different VM that shares packages with A's: B's report
// says the shared package layers came from the registry cache, none of them was built or
// uploaded (each was mounted from the cache repository), and verify finds B's image equal to
// its VM.
func TestRegistryCacheTwoWorkers(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	reg := testenv.Registry(t)
	cacheRepo := reg + "/vm2image-cache"
	dir := t.TempDir()
	repA, _ := worker(t, testenv.Root(t, testenv.WebVM), filepath.Join(dir, "cache-a"), cacheRepo, reg+"/a:1", filepath.Join(dir, "a.tar"))
	a := payloadSources(repA)
	if rc := repA.RegistryCache; rc == nil || rc.Pushed == 0 || rc.Hits != 0 || len(rc.Refused) > 0 {
		t.Fatalf("worker A's registry cache figures: %+v", rc)
	}
	for k, l := range a {
		if l.Source != convert.SourceBuilt {
			t.Errorf("worker A, %s: source %q, want built (its cache was empty)", k, l.Source)
		}
	}

	lite := testenv.Root(t, webLite)
	outB := filepath.Join(dir, "b.tar")
	repB, _ := worker(t, lite, filepath.Join(dir, "cache-b"), cacheRepo, reg+"/b:1", outB)
	want := "registry cache (" + cacheRepo + ")"
	fromCache := map[string]bool{} // diffIDs
	shared := 0
	for k, l := range payloadSources(repB) {
		if _, ok := a[k]; !ok {
			continue
		}
		shared++
		if l.Source != want {
			t.Errorf("worker B, %s (also in A's image): source %q, want %q", k, l.Source, want)
		}
		fromCache[l.DiffID] = true
	}
	if shared == 0 {
		t.Fatalf("no package layer shared between the two VMs: A %v, B %v", a, payloadSources(repB))
	}
	push := repB.Image.Push
	if push == nil {
		t.Fatal("worker B's report has no push figures")
	}
	for _, l := range repB.Image.Layers {
		if !fromCache[l.DiffID] {
			continue
		}
		if l.Source != want {
			t.Errorf("worker B's layer %s: source %q, want %q", l.Digest, l.Source, want)
		}
		if slices.Contains(push.Uploaded, l.Digest) || !slices.Contains(push.Mounted, l.Digest) {
			t.Errorf("worker B's shared package layer %s was uploaded, not mounted (mounted %v)", l.Digest, push.Mounted)
		}
	}
	if rc := repB.RegistryCache; rc == nil || rc.Hits < shared || len(rc.Refused) > 0 {
		t.Errorf("worker B's registry cache figures: %+v (shared %d)", rc, shared)
	}
	if push.LayersMounted < shared {
		t.Errorf("worker B mounted %d layers, want at least %d", push.LayersMounted, shared)
	}
	if v, err := exec.Command(vm2imageBinary(t), "verify", outB, "dir:"+lite).CombinedOutput(); err != nil {
		t.Errorf("verify of worker B's image: %v\n%s", err, v)
	} else if !strings.Contains(string(v), "EQUAL") {
		t.Errorf("verify of worker B's image:\n%s", v)
	}
}

// TestFleetWarmRunUploadsNoPackageLayer: a fleet of two VMs with a cache repository named in
// the inventory's defaults, converted twice (the second run with a new state directory, so it
// converts everything again): the second run uploads no package layer (each is in the
// repository already or mounted from the cache repository), and the summary shows the new
// columns.
func TestFleetWarmRunUploadsNoPackageLayer(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	reg := testenv.Registry(t)
	dir := t.TempDir()
	inv := filepath.Join(dir, "fleet.yaml")
	writeFile(t, inv, "defaults:\n  cache_repo: "+reg+"/vm2image-cache\nvms:\n  - name: web\n    source: dir:"+testenv.Root(t, testenv.WebVM)+
		"\n  - name: lite\n    source: dir:"+testenv.Root(t, webLite)+"\n")
	for i, state := range []string{filepath.Join(dir, "run1"), filepath.Join(dir, "run2")} {
		out, err := fleetCmd(t, inv, reg, state, "--jobs", "2").CombinedOutput()
		t.Logf("fleet convert, run %d:\n%s", i+1, out)
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		if !strings.Contains(string(out), "MOUNTED") || !strings.Contains(string(out), "BUILT/LOCAL/REGISTRY CACHE") {
			t.Errorf("run %d: the summary lacks the mounted and layer source columns", i+1)
		}
		if i == 0 {
			continue
		}
		for name := range readResults(t, state) {
			var rep convert.Report
			b, err := os.ReadFile(filepath.Join(state, name+".report.json"))
			must(t, err)
			must(t, json.Unmarshal(b, &rep))
			if rep.Image.Push == nil {
				t.Fatalf("%s: no push figures", name)
			}
			packages := 0
			for _, l := range rep.Image.Layers {
				if l.Role != "package" && l.Role != "base" {
					continue
				}
				packages++
				if slices.Contains(rep.Image.Push.Uploaded, l.Digest) {
					t.Errorf("warm run, %s: %s layer %s uploaded again", name, l.Role, l.Digest)
				}
			}
			if packages < 2 {
				t.Errorf("%s: %d base and package layers", name, packages)
			}
		}
	}
}

// TestRegistryCacheSinglePackagesLayer: with one packages layer per install set, worker B (its
// own empty cache) converting a VM with the install set worker A converted takes the packages
// layer from the registry cache (no install runs), mounts it on push, and verify finds the
// image equal to the VM.
func TestRegistryCacheSinglePackagesLayer(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	reg := testenv.Registry(t)
	cacheRepo := reg + "/vm2image-cache"
	dir := t.TempDir()
	root := testenv.Root(t, webLite)
	repA, _ := worker(t, root, filepath.Join(dir, "cache-a"), cacheRepo, reg+"/a:1", filepath.Join(dir, "a.tar"), "--package-layers", "single")
	if rc := repA.RegistryCache; rc == nil || rc.Pushed != 1 || rc.Misses != 1 {
		t.Fatalf("worker A's registry cache figures: %+v", rc)
	}
	outB := filepath.Join(dir, "b.tar")
	repB, _ := worker(t, root, filepath.Join(dir, "cache-b"), cacheRepo, reg+"/b:1", outB, "--package-layers", "single")
	if rc := repB.RegistryCache; rc == nil || rc.Hits != 1 || rc.Pushed != 0 || len(rc.Refused) > 0 {
		t.Fatalf("worker B's registry cache figures: %+v", rc)
	}
	want := "registry cache (" + cacheRepo + ")"
	found := false
	for _, l := range repB.Image.Layers {
		if l.Role != "packages" {
			continue
		}
		found = true
		if l.Source != want || l.DiffID != repA.Packages.LayerDiffID {
			t.Errorf("worker B's packages layer %s: source %q, want %q with A's diffID %s", l.DiffID, l.Source, want, repA.Packages.LayerDiffID)
		}
		if !slices.Contains(repB.Image.Push.Mounted, l.Digest) {
			t.Errorf("worker B's packages layer %s was not mounted (uploaded %v)", l.Digest, repB.Image.Push.Uploaded)
		}
	}
	if !found {
		t.Fatalf("worker B's image has no packages layer: %+v", repB.Image.Layers)
	}
	if v, err := exec.Command(vm2imageBinary(t), "verify", outB, "dir:"+root).CombinedOutput(); err != nil {
		t.Errorf("verify of worker B's image: %v\n%s", err, v)
	}
}

// TestRegistryCacheGrainedSkipsInstall: worker A converts a VM with package-grained layers (few
// layers allowed, so some packages go into a bundle), and again from its local cache with the
// cache repository, storing the install set's grained record and its parts; worker B, another machine with an empty cache that shares only the registry,
// converts the same VM: it installs nothing, takes every package layer (own payloads, the
// bundle, the configuration layer) from the registry cache and uploads none of them, and its
// image has A's layers, its VM diff included (the base+packages tree made from the layers is
// the one A built), and verifies equal to the VM.
func TestRegistryCacheGrainedSkipsInstall(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	reg := testenv.Registry(t)
	cacheRepo := reg + "/vm2image-cache"
	dir := t.TempDir()
	root := testenv.Root(t, webLite)
	// A builds with another cache repository first, then converts again with this one: the
	// build and the payloads come from A's local cache, and A stores what the registry cache
	// lacks (the record, its payloads and bundle) for the others.
	first, _ := worker(t, root, filepath.Join(dir, "cache-a"), reg+"/elsewhere", reg+"/a:0", filepath.Join(dir, "a0.tar"), "--max-layers", "10")
	if first.Packages.CacheHit || first.Packages.InstallSeconds == 0 {
		t.Fatalf("worker A did not install (cache hit %v, %.1f s)", first.Packages.CacheHit, first.Packages.InstallSeconds)
	}
	repA, _ := worker(t, root, filepath.Join(dir, "cache-a"), cacheRepo, reg+"/a:1", filepath.Join(dir, "a.tar"), "--max-layers", "10")
	if g := repA.Packages.Grained; g == nil || g.Bundled == 0 || g.OwnLayers == 0 || g.Record == "" {
		t.Fatalf("worker A: want own payload layers, a bundle and a record stored, got %+v", g)
	}
	if !repA.Packages.CacheHit || repA.RegistryCache == nil || repA.RegistryCache.Pushed < repA.Packages.Grained.OwnLayers+2 {
		t.Fatalf("worker A's second conversion: local cache hit %v, registry cache %+v; want the record, bundle and every payload stored",
			repA.Packages.CacheHit, repA.RegistryCache)
	}
	outB := filepath.Join(dir, "b.tar")
	repB, logB := worker(t, root, filepath.Join(dir, "cache-b"), cacheRepo, reg+"/b:1", outB, "--max-layers", "10")
	if !repB.Packages.CacheHit || repB.Packages.InstallSeconds != 0 || repB.Packages.Installed != repA.Packages.Installed {
		t.Errorf("worker B: cache hit %v, install %.1f s, %d installed (A %d); want the registry's record, no install",
			repB.Packages.CacheHit, repB.Packages.InstallSeconds, repB.Packages.Installed, repA.Packages.Installed)
	}
	if rc := repB.RegistryCache; rc == nil || rc.Hits == 0 || len(rc.Refused) > 0 || len(rc.Errors) > 0 {
		t.Errorf("worker B's registry cache figures: %+v\n%s", rc, logB)
	}
	want := "registry cache (" + cacheRepo + ")"
	if len(repA.Image.Layers) != len(repB.Image.Layers) {
		t.Fatalf("A's image has %d layers, B's %d", len(repA.Image.Layers), len(repB.Image.Layers))
	}
	roles := map[string]int{}
	for i, l := range repB.Image.Layers {
		a := repA.Image.Layers[i]
		if l.Role != a.Role || (l.Role != "runtime" && l.DiffID != a.DiffID) {
			t.Errorf("layer %d: A %s %s, B %s %s", i, a.Role, a.DiffID, l.Role, l.DiffID)
		}
		switch l.Role {
		case "package", "packages-bundle", "packages-config":
			roles[l.Role]++
			if l.Source != want {
				t.Errorf("worker B's %s layer %s: source %q, want %q", l.Role, l.DiffID, l.Source, want)
			}
			if slices.Contains(repB.Image.Push.Uploaded, l.Digest) {
				t.Errorf("worker B uploaded its %s layer %s", l.Role, l.Digest)
			}
		}
	}
	if roles["package"] == 0 || roles["packages-bundle"] != 1 || roles["packages-config"] != 1 {
		t.Errorf("worker B's package layers by role: %v", roles)
	}
	if v, err := exec.Command(vm2imageBinary(t), "verify", outB, "dir:"+root).CombinedOutput(); err != nil || !strings.Contains(string(v), "EQUAL") {
		t.Errorf("verify of worker B's image: %v\n%s", err, v)
	}
}
