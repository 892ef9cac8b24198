package builder

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// checkMatchesVM checks the property that matters: the built root holds the VM's packages, line
// for line, with the VM's marks; packages the repository no longer serves must be reported as
// Missing or VersionDiffers, and only those are excused.
func checkMatchesVM(t *testing.T, f *fixture, root string, res *Result) {
	t.Helper()
	excused := map[string]bool{}
	for _, p := range res.Missing {
		excused[p.Name+":"+p.Arch] = true
		t.Logf("missing from the repository: %s %s %s", p.Name, p.Version, p.Arch)
	}
	for _, c := range res.VersionDiffers {
		excused[c.Name+":"+c.Arch] = true
		t.Logf("version differs: %s %s: VM %s, built %s", c.Name, c.Arch, c.VMVersion, c.BaseVersion)
	}
	want, got := dpkgLines(t, f.vmRoot), dpkgLines(t, root)
	for k, line := range want {
		if g := got[k]; g != line && !excused[k] {
			t.Errorf("VM has %q, built root has %q", line, g)
		} else if g == line && excused[k] {
			t.Errorf("%s is reported missing or different but is installed as on the VM", k)
		}
	}
	for k, line := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("built root has %q, which the VM does not", line)
		}
	}
	if diff := cmp.Diff(showAuto(t, f.vmRoot), showAuto(t, root)); diff != "" {
		t.Errorf("apt-mark showauto differs (-VM +built):\n%s", diff)
	}
	t.Logf("%d packages on the VM, %d in the built root; roots %d -> %d; install %s, layer %s (%d bytes)",
		len(want), len(got), res.RootsBefore, res.RootsAfter, res.InstallTime.Round(time.Millisecond),
		res.LayerTime.Round(time.Millisecond), res.LayerSize)
}

// checkApplied applies the layer on the base with GNU tar and compares the package database
// with the built root's.
func checkApplied(t *testing.T, f *fixture, root string, res *Result) {
	t.Helper()
	applied := applyLayer(t, f.baseRoot, res.LayerPath)
	if diff := cmp.Diff(dpkgLines(t, root), dpkgLines(t, applied)); diff != "" {
		t.Errorf("base + layer differs from the built root (-built +applied):\n%s", diff)
	}
	if diff := cmp.Diff(showAuto(t, root), showAuto(t, applied)); diff != "" {
		t.Errorf("apt-mark showauto of base + layer differs (-built +applied):\n%s", diff)
	}
}

// buildTogether starts two Builds of in at once and returns the one that built and the one that
// waited for it; it fails the test unless exactly one of them is a cache hit.
func buildTogether(t *testing.T, ctx context.Context, in Input, opts Options) (built, waited *Result) {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]*Result, 2)
	errs := make([]error, 2)
	start := make(chan struct{})
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, cleanup, err := Build(ctx, in, opts)
			results[i], errs[i] = res, err
			if err == nil {
				t.Cleanup(func() { _ = cleanup() })
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	built, waited = results[0], results[1]
	if built.CacheHit {
		built, waited = waited, built
	}
	if built.CacheHit || !waited.CacheHit {
		t.Fatalf("two concurrent builds: cache hits %v and %v, want exactly one", built.CacheHit, waited.CacheHit)
	}
	return built, waited
}

// TestChrootBuildMatchesVM builds the fixture VM's packages layer twice at once (one build, one
// wait), checks the built root against the VM and the layer applied on the base, then checks
// that a third build is a fast cache hit.
func TestChrootBuildMatchesVM(t *testing.T) {
	f := newFixture(t)
	opts := testOptions(t, Chroot)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	built, waited := buildTogether(t, ctx, f.input(), opts)
	if built.LayerDiffID != waited.LayerDiffID || built.LayerPath != waited.LayerPath {
		t.Errorf("the waiting build got %s at %s, the building one %s at %s", waited.LayerDiffID, waited.LayerPath, built.LayerDiffID, built.LayerPath)
	}
	if entries, err := listEntries(opts.CacheDir); err != nil || len(entries) != 1 {
		t.Errorf("cache holds %d entries (%v), want 1", len(entries), err)
	}
	if len(built.Errors) > 0 {
		t.Errorf("build errors: %q", built.Errors)
	}
	checkMatchesVM(t, f, built.Root, built)
	checkApplied(t, f, built.Root, built)

	t0 := time.Now()
	again, cleanup, err := Build(ctx, f.input(), opts)
	hit := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	t.Logf("cache hit took %s", hit)
	if !again.CacheHit || again.LayerDiffID != built.LayerDiffID {
		t.Errorf("third build: hit %v, diff ID %s; want a hit with %s", again.CacheHit, again.LayerDiffID, built.LayerDiffID)
	}
	if hit > 2*time.Second {
		t.Errorf("cache hit took %s, want under 2s", hit)
	}
}

// TestDockerBuildMatchesVM builds the same layer in a container of the base image imported into
// the engine, and checks the exported tree and the layer the same way.
func TestDockerBuildMatchesVM(t *testing.T) {
	f := newFixture(t)
	in := f.input()
	in.BaseImage = importBase(t, f.baseRoot)
	opts := testOptions(t, Docker)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res, cleanup, err := Build(ctx, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if res.CacheHit || res.Exported == "" || res.Root != "" {
		t.Fatalf("docker build: hit %v, exported %q, root %q", res.CacheHit, res.Exported, res.Root)
	}
	if len(res.Errors) > 0 {
		t.Errorf("build errors: %q", res.Errors)
	}
	checkMatchesVM(t, f, res.Exported, res)
	checkApplied(t, f, res.Exported, res)
}
